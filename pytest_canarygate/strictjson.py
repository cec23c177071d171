"""Strict JSON: the one way the engine and its packs decode JSON read from an endpoint or a file.

RFC 8259 leaves two things to the reader, and Python's :mod:`json` decides both leniently: an
object that names one key twice (Python keeps the last value, so ``{"severity": "Escalate",
"severity": "Info"}`` reads as Info), and the non-standard ``NaN``, ``Infinity`` and
``-Infinity`` (accepted; a float literal such as ``1e999`` silently becomes infinity). Either
lets an answer say two things at once, and a non-finite number makes the observation the run
signs invalid JSON. :func:`loads` refuses them, and anything else that is not JSON, with one
:class:`~pytest_canarygate.errors.StrictJSONError` whose message is one line naming the key and
where it sits (``duplicate key "severity" in the object at entries[0]``).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pytest_canarygate.errors import StrictJSONError

__all__ = ["StrictJSONError", "loads"]

_SHOWN = 60
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


class _Duplicate(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


class _NonFinite(Exception):
    def __init__(self, literal: str) -> None:
        self.literal = literal


class _TooLong(Exception):
    def __init__(self, digits: int) -> None:
        self.digits = digits


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)  # built in C; a key named twice leaves fewer keys than pairs
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(key)
            seen.add(key)
    return obj


def _refuse_constant(literal: str) -> Any:
    raise _NonFinite(literal)


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _NonFinite(literal)
    return value


def _int(literal: str) -> int:
    try:
        return int(literal)
    except ValueError:  # longer than sys.get_int_max_str_digits()
        raise _TooLong(len(literal.lstrip("-"))) from None


_STRICT = json.JSONDecoder(
    object_pairs_hook=_unique_pairs,
    parse_constant=_refuse_constant,
    parse_float=_finite_float,
    parse_int=_int,
)


def loads(text: str | bytes | bytearray) -> Any:
    """Decode one JSON document strictly; raise :class:`StrictJSONError` for anything that is
    not strict JSON: bad syntax, a key named twice in one object, ``NaN``/``Infinity``, a number
    that overflows a double, an integer longer than Python reads, or nesting too deep. Bytes must
    be UTF-8."""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StrictJSONError(
                f"not UTF-8 ({exc.reason} at byte {exc.start})", pos=exc.start, syntax=True
            ) from None
    if not isinstance(text, str):
        raise TypeError(f"strictjson.loads takes str or bytes, not {type(text).__name__}")
    try:
        return _STRICT.decode(text)
    except json.JSONDecodeError as exc:
        raise StrictJSONError(f"{exc.msg} at char {exc.pos}", pos=exc.pos, syntax=True) from None
    except _Duplicate as exc:
        path, key = _locate_duplicate(text, exc.key)
        where = "in the top-level object" if not path else f"in the object at {path}"
        raise StrictJSONError(
            f"duplicate key {_show_key(key)} {where} (which of its values counts is not defined)",
            key=key,
            path=path,
        ) from None
    except _NonFinite as exc:
        literal = _shorten(exc.literal)
        why = (
            f"non-finite number {literal} (JSON has no NaN or Infinity)"
            if exc.literal in ("NaN", "Infinity", "-Infinity")
            else f"number {literal} is out of range (it overflows a double)"
        )
        raise StrictJSONError(why) from None
    except _TooLong as exc:
        raise StrictJSONError(f"an integer of {exc.digits} digits is too long to read") from None
    except RecursionError:
        raise StrictJSONError("nested too deeply to read") from None
    except ValueError as exc:  # anything else the decoder refuses
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StrictJSONError(_shorten(reason)) from None


# --- where a duplicate key sits ------------------------------------------------------------


class _Marked(dict[str, Any]):
    """An object whose ``duplicate`` key was named more than once."""

    duplicate: str = ""


def _marking_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    duplicate: str | None = None
    for key, value in pairs:
        if key in obj and duplicate is None:
            duplicate = key
        obj[key] = value
    if duplicate is None:
        return obj
    marked = _Marked(obj)
    marked.duplicate = duplicate
    return marked


def _locate_duplicate(text: str, fallback: str) -> tuple[str, str]:
    """The path of the first object (in document order) that names a key twice, and the key.
    Only called once the strict pass refused the text, so its cost is paid on errors only."""
    try:
        tree = json.JSONDecoder(
            object_pairs_hook=_marking_pairs, parse_constant=lambda _: None
        ).decode(text)
    except (ValueError, RecursionError):
        return "", fallback
    stack: list[tuple[str, Any]] = [("", tree)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, _Marked):
            return path, value.duplicate
        if isinstance(value, dict):
            children = [(_join(path, key), item) for key, item in value.items()]
        elif isinstance(value, list):
            children = [(f"{path}[{index}]", item) for index, item in enumerate(value)]
        else:
            continue
        stack.extend(reversed(children))
    return "", fallback


def _join(path: str, key: str) -> str:
    if _NAME.fullmatch(key) and len(key) <= _SHOWN:
        return f"{path}.{key}" if path else key
    return f"{path}[{_show_key(key)}]"


def _show_key(key: str) -> str:
    return _shorten(json.dumps(key))


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."
