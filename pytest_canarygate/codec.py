"""JSON form of provider evidence, so xdist workers judge the same typed records the
controller read (frozen dataclasses, datetimes and enums survive the round trip)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any

_RECORD = "__record__"
_DATETIME = "__datetime__"
_ENUM = "__enum__"


@functools.cache
def _registry() -> dict[str, type[Any]]:
    from pytest_canarygate.agtmux import records
    from pytest_canarygate.agtmux.providers import base

    types: dict[str, type[Any]] = {}
    for module in (records, base):
        for name in dir(module):
            value = getattr(module, name)
            if isinstance(value, type) and (
                dataclasses.is_dataclass(value) or issubclass(value, Enum)
            ):
                types[value.__name__] = value
    return types


def encode(value: Any) -> Any:
    """A JSON-ready form of ``value``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {_RECORD: type(value).__name__, **fields}
    if isinstance(value, Enum):
        return {_ENUM: type(value).__name__, "value": value.value}
    if isinstance(value, datetime):
        return {_DATETIME: value.isoformat()}
    if isinstance(value, Mapping):  # any mapping, read-only proxies included
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    return value


def decode(value: Any, _types: dict[str, type[Any]] | None = None) -> Any:
    """Rebuild what :func:`encode` produced; lists inside records come back as tuples."""
    types = _types if _types is not None else _registry()
    if isinstance(value, list):
        return [decode(v, types) for v in value]
    if not isinstance(value, dict):
        return value
    if _DATETIME in value:
        return datetime.fromisoformat(value[_DATETIME])
    if _ENUM in value:
        return types[value[_ENUM]](value["value"])
    if _RECORD in value:
        cls = types[value[_RECORD]]
        fields = {k: _tuples(decode(v, types)) for k, v in value.items() if k != _RECORD}
        return cls(**fields)
    return {k: decode(v, types) for k, v in value.items()}


def _tuples(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
