"""Parse and classify the agtmux daemon's stdout log (tracing-subscriber's default format).

A line is ``<RFC 3339 timestamp> <LEVEL> <target>: <message>``, with ANSI colour codes even when
redirected to a file (daemon facts 1.2). The messages recognized are the daemon's real ones
(daemon facts 5.4, 6.5, 8.3); every other line is kept with kind "other". A line that does not
start with a timestamp and a level continues the previous line's message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from datetime import timedelta
from datetime import timezone

from pytest_canarygate.agtmux.records import LogEvent
from pytest_canarygate.agtmux.records import RecordError

__all__ = ["LOG_KINDS", "classify", "parse_log", "parse_timestamp", "strip_ansi"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_LINE = re.compile(
    r"(?P<ts>\d{4}-\d{2}-\d{2}T\S+)\s+(?P<level>TRACE|DEBUG|INFO|WARN|ERROR)\s+(?P<rest>.*)",
    re.ASCII,
)
# Optional span context ("name{field=1}:") before the target, then "target: message".
_TARGET = re.compile(r"(?:\S*\}:\s)?(?P<target>[A-Za-z_]\w*(?:::\w+)*):\s(?P<message>.*)")
_TIMESTAMP = re.compile(
    r"(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d+))?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})",
    re.IGNORECASE | re.ASCII,
)

# (kind, message pattern), ASCII digits only; named groups become LogEvent.values
# (the _NUMERIC ones as int).
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern, re.ASCII))
    for kind, pattern in (
        ("hold_down", r"codex app-server: failure budget exhausted, hold-down (?P<seconds>\d+)s"),
        ("hold_down_active", r"codex app-server: hold-down active, (?P<seconds>\d+)s remaining"),
        ("reconnected", r"codex app-server reconnected"),
        ("reconnect_failed", r"codex app-server: reconnect failed, retry in (?P<retry_ms>\d+)ms"),
        ("process_exited", r"codex app-server process exited, attempting reconnect"),
        ("slo_breach", r"SLO breach: p95=(?P<p95_ms>\d+)ms, consecutive=(?P<consecutive>\d+)"),
        ("slo_degraded", r"SLO DEGRADED: p95=(?P<p95_ms>\d+)ms, consecutive=(?P<consecutive>\d+)"),
        ("full_resync", r"cursor recovery: full resync \(streak exceeded\)"),
        ("cursor_retry", r"cursor recovery: retry from committed=(?P<committed>\d+)"),
        ("cursor_advance_error", r"cursor watermark advance_fetched error(?:: (?P<detail>.*))?"),
        ("cursor_commit_error", r"cursor watermark commit error(?:: (?P<detail>.*))?"),
        ("source_stale", r"source stale: (?P<source_id>\S.*)"),
        ("poll_tick_failed", r"poll tick failed: (?P<detail>.*)"),
    )
)
_NUMERIC = frozenset({"seconds", "retry_ms", "p95_ms", "consecutive", "committed"})
LOG_KINDS = tuple(kind for kind, _ in _PATTERNS)
"""Every kind :func:`classify` can return besides "other"."""


def strip_ansi(text: str) -> str:
    """Remove ANSI escape sequences (colours, dimming, italics)."""
    return _ANSI.sub("", text)


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 timestamp with an offset (any number of fractional digits) to UTC."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp with a UTC offset: {text!r}")
    frac = (match["frac"] or "")[:6].ljust(6, "0")
    tz = match["tz"].upper()
    when = datetime.fromisoformat(f"{match['base']}.{frac}").replace(tzinfo=timezone.utc)
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        when -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return when


def classify(message: str) -> tuple[str, dict[str, int | str]]:
    """The kind of a log message and the values parsed out of it ("other", {} if unknown)."""
    text = message.strip()
    for kind, pattern in _PATTERNS:
        match = pattern.fullmatch(text)
        if match:
            values = {
                name: int(value) if name in _NUMERIC else value
                for name, value in match.groupdict().items()
                if value is not None
            }
            return kind, values
    return "other", {}


def parse_log(lines: Iterable[str]) -> tuple[list[LogEvent], datetime | None, datetime | None]:
    """Parse log lines into events; return them with the earliest and latest timestamp seen.

    Raises :class:`RecordError` (key "line N") for a first line that is not a log line or a
    timestamp that cannot be read.
    """
    events: list[LogEvent] = []
    first: datetime | None = None
    last: datetime | None = None
    continued: list[str] = []

    def flush() -> None:
        if continued and events:
            head = events[-1]
            events[-1] = LogEvent(
                head.at,
                head.level,
                head.target,
                "\n".join([head.message, *continued]),
                head.kind,
                head.line,
                head.values,
            )
        continued.clear()

    for number, raw_line in enumerate(lines, 1):
        line = strip_ansi(raw_line).rstrip("\r\n")
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            if not events:
                raise RecordError(f"line {number}", "not a daemon log line (timestamp LEVEL ...)")
            continued.append(line)
            continue
        flush()
        try:
            at = parse_timestamp(match["ts"])
        except ValueError as exc:
            raise RecordError(f"line {number}", str(exc)) from None
        target_match = _TARGET.fullmatch(match["rest"])
        target, message = (
            (target_match["target"], target_match["message"])
            if target_match
            else ("", match["rest"])
        )
        kind, values = classify(message)
        events.append(LogEvent(at, match["level"], target, message, kind, number, dict(values)))
        first = at if first is None or at < first else first
        last = at if last is None or at > last else last
    flush()
    return events, first, last
