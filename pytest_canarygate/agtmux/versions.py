"""Release versions as ``daemon.info.version`` reports them (``0.1.0``, daemon facts 2.10):
semantic versions ``MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]``, parsed strictly and ordered by
semver precedence (a pre-release sorts before its release; build metadata does not count).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

__all__ = ["Version", "parse_version"]

_NUMBER = r"0|[1-9][0-9]*"
_PRE_ID = rf"(?:{_NUMBER}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_VERSION = re.compile(
    rf"(?P<major>{_NUMBER})\.(?P<minor>{_NUMBER})\.(?P<patch>{_NUMBER})"
    rf"(?:-(?P<pre>{_PRE_ID}(?:\.{_PRE_ID})*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)
_MAX_LENGTH = 256


@total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A parsed version; ``==`` and ``<`` follow semver precedence, ``text`` is as given."""

    text: str
    release: tuple[int, int, int]
    prerelease: tuple[str, ...]

    def _key(self) -> tuple[tuple[int, int, int], int, tuple[tuple[int, int, str], ...]]:
        # No pre-release sorts after any pre-release; numeric identifiers before alphanumeric.
        ids = tuple((0, int(i), "") if i.isdigit() else (1, 0, i) for i in self.prerelease)
        return self.release, 0 if self.prerelease else 1, ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key() == other._key()

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return self.text


def parse_version(text: object) -> Version | None:
    """The version ``text`` names, or None when it is not ``MAJOR.MINOR.PATCH[-pre][+build]``
    (no leading ``v``, no leading zeros, at most 256 characters)."""
    if not isinstance(text, str) or len(text) > _MAX_LENGTH:
        return None
    match = _VERSION.fullmatch(text)
    if match is None:
        return None
    release = (int(match["major"]), int(match["minor"]), int(match["patch"]))
    prerelease = tuple(match["pre"].split(".")) if match["pre"] else ()
    return Version(text, release, prerelease)
