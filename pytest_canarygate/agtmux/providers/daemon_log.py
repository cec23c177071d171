"""Parse and classify the agtmux daemon's stdout log (tracing-subscriber's default format).

A line is ``<RFC 3339 timestamp> <LEVEL> <target>: <message>``, with ANSI colour codes even when
redirected to a file (daemon facts 1.2). The messages recognized are the daemon's real ones
(daemon facts 5.4, 6.5, 8.3); every other line is kept with kind "other". A line that does not
start with a timestamp and a level continues the previous line's message.

:class:`LogScanner` reads a log as a stream and keeps only the lines inside a window, so a log of
any size costs the memory of its window.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from datetime import datetime
from datetime import timedelta
from datetime import timezone

from pytest_canarygate.agtmux.records import LogEvent
from pytest_canarygate.agtmux.records import RecordError

__all__ = ["LOG_KINDS", "LogScanner", "classify", "parse_log", "parse_timestamp", "strip_ansi"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_LINE = re.compile(
    r"(?P<ts>\d{4}-\d{2}-\d{2}T\S+)\s+(?P<level>TRACE|DEBUG|INFO|WARN|ERROR)\s+(?P<rest>.*)",
    re.ASCII,
)
# Optional span context ("name{field=1}:") before the target, then "target: message".
_TARGET = re.compile(r"(?:\S*\}:\s)?(?P<target>[A-Za-z_]\w*(?:::\w+)*):\s(?P<message>.*)")
# The head of a line exactly as the daemon writes it (UTC, colours or none): a sufficient
# condition for what _LINE finds after strip_ansi, so most lines skip the strip and the full
# timestamp parse. Anything else takes the slow path, which decides.
_FAST_HEAD = re.compile(
    r"(?:\x1b\[2m)?(?P<base>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<frac>\d{1,9}))?Z"
    r"(?:\x1b\[0m)? (?:\x1b\[\d\dm)? *(?:TRACE|DEBUG|INFO|WARN|ERROR)(?:\x1b\[0m)? ",
    re.ASCII,
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EPOCH_DAY = date(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)
_TIMESTAMP = re.compile(
    r"(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d+))?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})",
    re.IGNORECASE | re.ASCII,
)

#: Offsets :func:`parse_timestamp` need not apply: UTC itself.
_UTC_OFFSETS = frozenset({"Z", "z", "+00:00", "-00:00", "+0000", "-0000"})

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
    base, frac, tz = match.group("base", "frac", "tz")
    frac = (frac or "")[:6].ljust(6, "0")
    try:
        when = datetime.fromisoformat(f"{base}.{frac}+00:00")  # UTC (much faster than replace)
    except ValueError:  # raised again, worded as for the time alone
        when = datetime.fromisoformat(f"{base}.{frac}").replace(tzinfo=timezone.utc)
    if tz not in _UTC_OFFSETS:
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


class LogScanner:
    """Read a log one line at a time, keeping only what lies inside a window.

    Every line is checked (a first line that is not a log line, or a timestamp that cannot be
    read, raises :class:`RecordError` naming the line) and counts towards the coverage
    (:attr:`first`/:attr:`last`, the earliest and latest timestamps of the whole log), but only
    events stamped at or after ``since`` are kept, with their continuation lines: memory grows
    with the window, not with the log. :attr:`kept_lines` holds those lines exactly as read (the
    evidence the gates judge); more than ``max_kept_bytes`` of them raises :class:`RecordError`.
    """

    def __init__(self, since: datetime | None = None, *, max_kept_bytes: int | None = None):
        self.since = since
        self.max_kept_bytes = max_kept_bytes
        self.events: list[LogEvent] = []
        self.kept_lines: list[str] = []
        self.kept_bytes = 0
        self.lines = 0
        self._since_us = None if since is None else _to_us(since)
        self._first_us: int | None = None
        self._last_us: int | None = None
        self._seen_head = False
        self._keeping = False
        self._continued: list[str] = []
        self._days: dict[str, int] = {}

    @property
    def first(self) -> datetime | None:
        """The earliest timestamp of every line read (None before the first)."""
        return None if self._first_us is None else _from_us(self._first_us)

    @property
    def last(self) -> datetime | None:
        """The latest timestamp of every line read (None before the first)."""
        return None if self._last_us is None else _from_us(self._last_us)

    def feed(self, raw_line: str) -> None:
        """One line of the log (its newline may be there or not)."""
        self.feed_all((raw_line,))

    def feed_all(self, lines: Iterable[str]) -> None:
        """Every line of ``lines``, in order (the same as :meth:`feed` on each, faster)."""
        since_us = self._since_us
        if since_us is None:
            for raw_line in lines:
                self.lines += 1
                self._slow(raw_line)
            return
        fast_head = _FAST_HEAD.match
        fast_us = self._fast_us
        for raw_line in lines:
            self.lines += 1
            fast = fast_head(raw_line)
            if fast is not None:
                # Most of a long log lies before the window: date it, count it, drop it.
                at_us = fast_us(fast["base"], fast["frac"])
                if at_us is not None and at_us < since_us:
                    if self._continued:
                        self._flush()
                    self._seen_head = True
                    self._keeping = False
                    if self._first_us is None or at_us < self._first_us:
                        self._first_us = at_us
                    if self._last_us is None or at_us > self._last_us:
                        self._last_us = at_us
                    continue
            self._slow(raw_line)

    def _slow(self, raw_line: str) -> None:
        number = self.lines
        line = strip_ansi(raw_line) if "\x1b" in raw_line else raw_line
        line = line.rstrip("\r\n")
        if not line or line.isspace():
            if self._keeping:
                self._keep(raw_line)
            return
        match = _LINE.match(line)
        if match is None:
            if not self._seen_head:
                raise RecordError(f"line {number}", "not a daemon log line (timestamp LEVEL ...)")
            if self._keeping:
                self._continued.append(line)
                self._keep(raw_line)
            return
        self._flush()
        self._seen_head = True
        try:
            at = parse_timestamp(match["ts"])
        except ValueError as exc:
            raise RecordError(f"line {number}", str(exc)) from None
        self._span(_to_us(at))
        self._keeping = self.since is None or at >= self.since
        if not self._keeping:
            return
        target_match = _TARGET.fullmatch(match["rest"])
        target, message = (
            (target_match["target"], target_match["message"])
            if target_match
            else ("", match["rest"])
        )
        kind, values = classify(message)
        self.events.append(
            LogEvent(at, match["level"], target, message, kind, number, dict(values))
        )
        self._keep(raw_line)

    def finish(self) -> None:
        """Call once after the last line (attaches pending continuation lines)."""
        self._flush()

    @property
    def kept_text(self) -> str:
        """The kept lines as read, each ending in a newline."""
        return "".join(line if line.endswith("\n") else f"{line}\n" for line in self.kept_lines)

    def _span(self, at_us: int) -> None:
        if self._first_us is None or at_us < self._first_us:
            self._first_us = at_us
        if self._last_us is None or at_us > self._last_us:
            self._last_us = at_us

    def _keep(self, raw_line: str) -> None:
        self.kept_lines.append(raw_line)
        self.kept_bytes += len(raw_line.encode("utf-8", "replace"))
        if self.max_kept_bytes is not None and self.kept_bytes > self.max_kept_bytes:
            since = "" if self.since is None else f" since {self.since.isoformat()}"
            raise RecordError(
                f"line {self.lines}",
                f"the log lines{since} hold more than {self.max_kept_bytes} bytes, more than "
                "is kept as evidence (lower the daemon's log level, or rotate the log)",
            )

    def _fast_us(self, base: str, frac: str | None) -> int | None:
        """Microseconds since the epoch of a UTC timestamp; None if it is no real date and time
        (the slow path then names the line). Days are cached: neighbouring lines share them."""
        day = self._days.get(base[:10])
        if day is None:
            try:
                day = (date.fromisoformat(base[:10]) - _EPOCH_DAY).days * 86_400_000_000
            except ValueError:
                return None
            if len(self._days) >= 4096:
                self._days.clear()
            self._days[base[:10]] = day
        hours, minutes, seconds = int(base[11:13]), int(base[14:16]), int(base[17:19])
        if hours > 23 or minutes > 59 or seconds > 59:
            return None
        at = day + ((hours * 60 + minutes) * 60 + seconds) * 1_000_000
        return at + int(frac[:6].ljust(6, "0")) if frac else at

    def _flush(self) -> None:
        continued = self._continued
        if continued and self.events:
            head = self.events[-1]
            self.events[-1] = LogEvent(
                head.at,
                head.level,
                head.target,
                "\n".join([head.message, *continued]),
                head.kind,
                head.line,
                head.values,
            )
        continued.clear()


def _to_us(when: datetime) -> int:
    return (when - _EPOCH) // _MICROSECOND


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def parse_log(
    lines: Iterable[str], since: datetime | None = None
) -> tuple[list[LogEvent], datetime | None, datetime | None]:
    """Parse log lines into events (only those at or after ``since`` when given); return them
    with the earliest and latest timestamp of every line.

    Raises :class:`RecordError` (key "line N") for a first line that is not a log line or a
    timestamp that cannot be read.
    """
    scanner = LogScanner(since)
    scanner.feed_all(lines)
    scanner.finish()
    return scanner.events, scanner.first, scanner.last
