"""Validated TOML: values annotated with their key path and file, read through typed getters.

Every getter of :class:`Table` fails with a :class:`~pytest_canarygate.errors.ConfigError` naming
the file, the key path, the bad value and what would have been accepted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from pytest_canarygate.errors import ConfigError

__all__ = ["Node", "Table", "annotate", "fail", "join_key", "one_of", "parse_duration", "plain"]

_DURATION = re.compile(r"(?:\d+(?:ms|s|m|h|d))+")
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
DURATION_HINT = 'expected a duration like "90s", "20m", "2h", "10d" or "1h30m"'


def parse_duration(text: str) -> int | None:
    """Milliseconds of a duration such as "2h" or "1h30m" (units ms, s, m, h, d); else None."""
    if not _DURATION.fullmatch(text):
        return None
    return sum(int(n) * _UNIT_MS[unit] for n, unit in _DURATION_PART.findall(text))


# --- annotated TOML trees ------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """A TOML value with the key path and file it came from (tables hold dict[str, Node])."""

    value: object
    path: str
    file: str


def join_key(path: str, key: str) -> str:
    """``path.key`` (just ``key`` at the top level)."""
    return f"{path}.{key}" if path else key


def annotate(raw: object, path: str, file: str) -> Node:
    """Wrap parsed TOML (and everything in it) in :class:`Node` objects."""
    if isinstance(raw, dict):
        return Node({k: annotate(v, join_key(path, k), file) for k, v in raw.items()}, path, file)
    if isinstance(raw, list):
        return Node([annotate(v, f"{path}[{i}]", file) for i, v in enumerate(raw)], path, file)
    return Node(raw, path, file)


def plain(node: Node) -> object:
    """The parsed TOML value of ``node``, without annotations."""
    if isinstance(node.value, dict):
        return {k: plain(v) for k, v in node.value.items()}
    if isinstance(node.value, list):
        return [plain(v) for v in node.value]
    return node.value


def _show(node: Node) -> str:
    text = json.dumps(plain(node), ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def fail(node: Node, reason: str) -> NoReturn:
    """Raise ConfigError naming the file, key path and value of ``node`` and ``reason``."""
    raise ConfigError(f"scenario file {node.file}: {node.path} = {_show(node)}: {reason}")


def one_of(choices: Sequence[str]) -> str:
    """'expected one of "a", "b"' for an error message."""
    return "expected one of " + ", ".join(json.dumps(c) for c in choices)


class Table:
    """One table under validation: typed getters that fail with the key path and the file."""

    def __init__(self, node: Node, accepted: Sequence[str] | None) -> None:
        if not isinstance(node.value, dict):
            fail(node, "expected a table")
        self.node = node
        self.items: dict[str, Node] = node.value
        if accepted is not None:
            for key, child in self.items.items():
                if key not in accepted:
                    fail(child, f"unknown key (accepted: {', '.join(accepted)})")

    def get(self, key: str) -> Node | None:
        return self.items.get(key)

    def missing(self, key: str) -> NoReturn:
        where = join_key(self.node.path, key)
        raise ConfigError(f"scenario file {self.node.file}: {where}: missing required key")

    def require(self, key: str) -> Node:
        node = self.items.get(key)
        return self.missing(key) if node is None else node

    def string(
        self, key: str, default: str | None = None, *, pattern: re.Pattern[str] | None = None
    ) -> str:
        """A string (required unless ``default`` is given), optionally matching ``pattern``."""
        node = self.items.get(key)
        if node is None:
            return default if default is not None else self.missing(key)
        if not isinstance(node.value, str):
            fail(node, "expected a string")
        if pattern is not None and not pattern.fullmatch(node.value):
            fail(node, f"expected a value matching {pattern.pattern}")
        return node.value

    def optional_string(self, key: str) -> str | None:
        return self.string(key) if key in self.items else None

    def choice(self, key: str, choices: Sequence[str], default: str | None = None) -> str:
        node = self.items.get(key)
        if node is None:
            return default if default is not None else self.missing(key)
        if node.value not in choices:
            fail(node, one_of(choices))
        return str(node.value)

    def integer(
        self, key: str, default: int | None, *, minimum: int, maximum: int | None = None
    ) -> int:
        node = self.items.get(key)
        if node is None:
            return default if default is not None else self.missing(key)
        value = node.value
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < minimum
            or (maximum is not None and value > maximum)
        ):
            bounds = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
            fail(node, f"expected an integer {bounds}")
        return value

    def number(self, key: str, minimum: float, maximum: float) -> float | None:
        node = self.items.get(key)
        if node is None:
            return None
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            fail(node, f"expected a number from {minimum} to {maximum}")
        if not minimum <= value <= maximum:
            fail(node, f"expected a number from {minimum} to {maximum}")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        node = self.items.get(key)
        if node is None:
            return default
        if not isinstance(node.value, bool):
            fail(node, "expected true or false")
        return node.value

    def strings(self, key: str, choices: Sequence[str] | None = None) -> list[Node]:
        """An array of strings (default empty), each one of ``choices`` if given."""
        node = self.items.get(key)
        if node is None:
            return []
        if not isinstance(node.value, list):
            fail(node, "expected an array of strings")
        for item in node.value:
            if not isinstance(item.value, str):
                fail(item, "expected a string")
            if choices is not None and item.value not in choices:
                fail(item, one_of(choices))
        return list(node.value)

    def table(self, key: str, accepted: Sequence[str] | None) -> Table | None:
        node = self.items.get(key)
        return None if node is None else Table(node, accepted)

    def tables(self, key: str, accepted: Sequence[str]) -> list[Table]:
        """An array of tables (``[[key]]``), default empty."""
        node = self.items.get(key)
        if node is None:
            return []
        if not isinstance(node.value, list):
            fail(node, f"expected an array of tables ([[{node.path}]])")
        return [Table(item, accepted) for item in node.value]

    def duration(self, key: str, default: int | None = None) -> int:
        """A duration string (see :func:`parse_duration`) in milliseconds."""
        node = self.items.get(key)
        if node is None:
            return default if default is not None else self.missing(key)
        return _duration_of(node)

    def durations(self, key: str) -> list[int]:
        """An array of durations in milliseconds (default empty)."""
        return [_duration_of(node) for node in self.strings(key)]

    def named_tables(
        self, key: str, accepted: Sequence[str], *, pattern: re.Pattern[str]
    ) -> dict[str, Table]:
        """A table of tables keyed by name (``[key.<name>]``), each name matching ``pattern``.

        Unlike an array of tables, a scenario that extends another can change or add one entry.
        """
        outer = self.table(key, None)
        if outer is None:
            return {}
        for name, node in outer.items.items():
            if not pattern.fullmatch(name):
                fail(node, f"expected names matching {pattern.pattern}")
        return {name: Table(node, accepted) for name, node in outer.items.items()}


def _duration_of(node: Node) -> int:
    value = node.value
    ms = parse_duration(value) if isinstance(value, str) else None
    if ms is None:
        fail(node, DURATION_HINT)
    return ms
