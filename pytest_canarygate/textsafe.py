"""Untrusted text made safe to print: a file name or a field from a bundle cannot move the
cursor, recolour the terminal, reorder what follows or start a line of its own (such as a forged
``VALID  all good``)."""

from __future__ import annotations

import re

__all__ = ["visible"]

# C0 and C1 controls, DEL, line and paragraph separators, bidirectional overrides and isolates,
# and lone surrogates (undecodable bytes of a file name).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_UNSAFE_KEEPING_LINES = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every character that could act on a terminal written as an escape
    (``\\x1b``, ``\\n``, ``\\u202e``); ``keep_newlines`` leaves line breaks of text the engine
    itself wrote over several lines."""
    pattern = _UNSAFE_KEEPING_LINES if keep_newlines else _UNSAFE
    return pattern.sub(_escape, text)
