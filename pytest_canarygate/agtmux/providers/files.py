"""Evidence read from local files (``file://``); formats in ``docs/operations-contract.md``.

A missing file or directory raises :class:`EvidenceMissing` (a configured source that is not
there is broken, not absent), an unreadable one :class:`TransportError`, malformed content
:class:`ProtocolError` naming the file and the line (JSON lines, logs) or the key (JSON, TOML).

Every file and folder read, the archived binary included, gets the socket's trust rule first
(:func:`pytest_canarygate.trust.check_file_trust`): it and every folder above it belong to the
current user or root and nobody else can write them, symbolic links are followed only from such
folders, and only regular files are opened, so a FIFO or device never blocks a read. A refusal
raises :class:`UntrustedEndpointError` naming the path and the fix. Every read is bounded in
bytes and in time (the ``MAX_*`` and ``*_SECONDS`` constants below); the daemon log and the JUnit
report are read as streams, keeping only what is judged.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from pytest_canarygate import strictjson
from pytest_canarygate.agtmux.providers.base import AlertLedgerProvider
from pytest_canarygate.agtmux.providers.base import ArchiveProvider
from pytest_canarygate.agtmux.providers.base import BindingStatsProvider
from pytest_canarygate.agtmux.providers.base import BuildResultProvider
from pytest_canarygate.agtmux.providers.base import CursorStatsProvider
from pytest_canarygate.agtmux.providers.base import DaemonLogProvider
from pytest_canarygate.agtmux.providers.base import Evidence
from pytest_canarygate.agtmux.providers.base import Provider
from pytest_canarygate.agtmux.providers.base import RuntimeSelectorProvider
from pytest_canarygate.agtmux.providers.base import SnapshotProvider
from pytest_canarygate.agtmux.providers.base import Source
from pytest_canarygate.agtmux.providers.base import SupervisorProvider
from pytest_canarygate.agtmux.providers.base import Timeouts
from pytest_canarygate.agtmux.providers.daemon_log import LogScanner
from pytest_canarygate.agtmux.providers.junit import read_junit
from pytest_canarygate.agtmux.providers.ops import document_evidence
from pytest_canarygate.agtmux.providers.ops import malformed
from pytest_canarygate.agtmux.records import AlertEntry
from pytest_canarygate.agtmux.records import AlertLedger
from pytest_canarygate.agtmux.records import ArchiveManifest
from pytest_canarygate.agtmux.records import BindingStats
from pytest_canarygate.agtmux.records import BuildResult
from pytest_canarygate.agtmux.records import CursorStats
from pytest_canarygate.agtmux.records import LogEvent
from pytest_canarygate.agtmux.records import RecordError
from pytest_canarygate.agtmux.records import RuntimeSelector
from pytest_canarygate.agtmux.records import SnapshotMetadata
from pytest_canarygate.agtmux.records import SupervisorEvent
from pytest_canarygate.agtmux.records import SupervisorStatus
from pytest_canarygate.agtmux.records import check_distinct
from pytest_canarygate.agtmux.records import datetime_to_ms
from pytest_canarygate.agtmux.records import kept_since
from pytest_canarygate.agtmux.records import ms_to_datetime
from pytest_canarygate.agtmux.records import parse_archive_manifest
from pytest_canarygate.agtmux.records import parse_binding_stats
from pytest_canarygate.agtmux.records import parse_control
from pytest_canarygate.agtmux.records import parse_cursor_stats
from pytest_canarygate.agtmux.records import parse_runtime_selector
from pytest_canarygate.agtmux.records import parse_snapshot
from pytest_canarygate.agtmux.records import parse_supervisor_event
from pytest_canarygate.agtmux.records import parse_supervisor_status
from pytest_canarygate.endpoints import parse_endpoint
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.errors import EvidenceMissing
from pytest_canarygate.errors import ProtocolError
from pytest_canarygate.errors import TransportError
from pytest_canarygate.tomlfile import tomllib
from pytest_canarygate.trust import TrustedFile
from pytest_canarygate.trust import check_file_trust
from pytest_canarygate.trust import open_trusted

__all__ = [
    "SUPERVISOR_EVENTS_FILE",
    "SUPERVISOR_STATUS_FILE",
    "AlertLedgerFile",
    "ArchiveManifestFile",
    "BindingStatsFile",
    "CursorStatsFile",
    "DaemonLogFile",
    "FileProvider",
    "JUnitFile",
    "RuntimeSelectorFile",
    "SnapshotDirectory",
    "SupervisorDirectory",
]

T = TypeVar("T")

SUPERVISOR_STATUS_FILE = "status.json"
SUPERVISOR_EVENTS_FILE = "events.jsonl"


#: The most that is read from one evidence file or snapshot folder (documents, JSON-lines
#: histories, the JUnit report).
MAX_FILE_BYTES = 256 * 1024 * 1024
#: The most that is read from the daemon log, which is streamed: only its window is kept.
MAX_LOG_BYTES = 16 * 1024 * 1024 * 1024
#: The most that is kept of the daemon log: the lines inside the window asked for.
MAX_LOG_KEPT_BYTES = 32 * 1024 * 1024
#: A longer daemon log line is cut there (its kept text says how much was left out).
MAX_LOG_LINE_BYTES = 64 * 1024
#: The largest archived binary whose sha256 is computed.
MAX_ARCHIVE_BYTES = 1024 * 1024 * 1024
#: The most snapshot files read from one snapshot folder.
MAX_SNAPSHOT_FILES = 10_000
#: A JUnit report up to this size is attached whole; a larger one by its size and sha256.
JUNIT_ATTACH_BYTES = 1024 * 1024
#: How long reading one evidence file (or the snapshot folder) may take.
READ_SECONDS = 60.0
#: How long hashing the archived binary may take.
ARCHIVE_SECONDS = 120.0
#: How long streaming the daemon log may take.
LOG_SECONDS = 600.0
_CHUNK = 1 << 20
_ROTATE = "rotate the log, or point at a smaller file"


class FileProvider(Provider):
    """Base of the file providers: resolves the URI to a path and reads it with clear errors.

    Errors name the URI and, when the URI is a directory, the file inside it that was read.
    """

    def __init__(self, uri: str, timeouts: Timeouts | None = None) -> None:
        super().__init__(uri)
        endpoint = parse_endpoint(uri)
        if endpoint.scheme != "file":
            raise ConfigError(f"{type(self).__name__} reads file:// URIs, got {uri!r}")
        self.path = Path(endpoint.path)
        self.timeouts = timeouts or Timeouts()

    def _what(self, path: Path) -> str | None:
        return None if path == self.path else path.name

    def _source(self, path: Path) -> Source:
        return Source(self.uri, str(path))

    def _open(
        self,
        path: Path,
        *,
        max_bytes: int | None = None,
        seconds: float | None = None,
        expected: str | None = None,
        hint: str = _ROTATE,
    ) -> TrustedFile:
        """``path`` opened after the trust check, its reads bounded in bytes and time
        (default: :data:`MAX_FILE_BYTES` and :data:`READ_SECONDS`)."""
        return open_trusted(
            path,
            endpoint=self.uri,
            method=self._what(path),
            max_bytes=MAX_FILE_BYTES if max_bytes is None else max_bytes,
            seconds=READ_SECONDS if seconds is None else seconds,
            expected=expected,
            hint=hint,
        )

    def _read_bytes(
        self, path: Path, *, max_bytes: int | None = None, seconds: float | None = None
    ) -> bytes:
        with self._open(path, max_bytes=max_bytes, seconds=seconds) as handle:
            return handle.read()

    def _decode(self, path: Path, data: bytes, *, lenient: bool = False) -> str:
        try:
            return data.decode("utf-8", "replace" if lenient else "strict")
        except UnicodeDecodeError as exc:
            raise ProtocolError(
                self.uri, self._what(path), f"{path} is not UTF-8 (byte {exc.start})"
            ) from None

    def _read_text(
        self,
        path: Path,
        *,
        lenient: bool = False,
        max_bytes: int | None = None,
        seconds: float | None = None,
    ) -> str:
        data = self._read_bytes(path, max_bytes=max_bytes, seconds=seconds)
        return self._decode(path, data, lenient=lenient)

    def _read_json(self, path: Path) -> object:
        return self._parse_json(path, self._read_text(path))

    def _parse_json(self, path: Path, text: str) -> object:
        try:
            return strictjson.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(self.uri, self._what(path), f"{path} is not JSON: {exc}") from None

    def _read_history(
        self,
        path: Path,
        parse: Callable[[object, str], T],
        written_at: Callable[[T], int],
    ) -> tuple[list[T], str, datetime | None, datetime | None]:
        """Read a JSON-lines history: records, the text, and the span it covers.

        The span starts at the header's ``covers_from_ms`` or else at the first record, and ends
        at the latest time written (records, checkpoints).
        """
        text = self._read_text(path)
        records: list[T] = []
        times: list[int] = []
        header: int | None = None
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            where = f"line {number}"
            try:
                value = strictjson.loads(line)
            except (ValueError, RecursionError) as exc:
                raise ProtocolError(
                    self.uri, self._what(path), f"{where}: not JSON: {exc}"
                ) from None
            try:
                control = parse_control(value)
                if control is None:
                    record = parse(value, "")
                    records.append(record)
                    times.append(written_at(record))
                elif control[0] == "checkpoint":
                    times.append(control[1])
                elif times or header is not None:
                    raise RecordError("header", "only allowed as the first record")
                else:
                    header = control[1]
            except RecordError as exc:
                raise malformed(self.uri, self._what(path), where, exc) from None
        start = header if header is not None else (times[0] if times else None)
        end = max([*times, *([header] if header is not None else [])], default=None)
        return (
            records,
            text,
            None if start is None else ms_to_datetime(start),
            None if end is None else ms_to_datetime(end),
        )


def _since_ms(since: datetime | None) -> int:
    return -1 if since is None else datetime_to_ms(since)


class SnapshotDirectory(FileProvider, SnapshotProvider):
    """A directory holding one ``SnapshotMetadata`` JSON file (``*.json``) per snapshot."""

    def snapshots(self) -> Evidence[SnapshotMetadata]:
        # The folder is trust-checked before it is listed; every *.json in it is then read
        # (a FIFO, device or folder named *.json is refused, not skipped), all of them within
        # one budget of bytes and time.
        folder = check_file_trust(self.path, endpoint=self.uri, directory=True)
        try:
            names = sorted(entry.name for entry in os.scandir(folder.real))
        except OSError as exc:
            raise TransportError(
                self.uri, None, f"cannot list {self.path}: {exc.strerror or exc}"
            ) from None
        paths = [self.path / name for name in names if Path(name).suffix == ".json"]
        if len(paths) > MAX_SNAPSHOT_FILES:
            raise ProtocolError(
                self.uri,
                None,
                f"{self.path} holds {len(paths)} snapshot files, more than the "
                f"{MAX_SNAPSHOT_FILES} read as evidence",
            )
        deadline = time.monotonic() + READ_SECONDS
        budget = MAX_FILE_BYTES
        records: list[SnapshotMetadata] = []
        raw: dict[str, object] = {}
        for path in paths:
            with self._open(path, max_bytes=budget, seconds=deadline - time.monotonic()) as f:
                data = f.read()
            budget -= len(data)
            text = self._decode(path, data)
            raw[path.name] = payload = self._parse_json(path, text)
            try:
                records.append(parse_snapshot(payload))
            except RecordError as exc:
                raise malformed(self.uri, path.name, "", exc) from None
        try:  # one snapshot_id in two files contradicts itself
            names = [p.name for p in paths]
            check_distinct(records, lambda s: s.snapshot_id, "snapshot", names=names)
        except RecordError as exc:
            raise malformed(self.uri, None, "", exc) from None
        records.sort(key=lambda s: (s.created_at_ms, s.snapshot_id))
        return Evidence(tuple(records), self._source(self.path), raw)


class SupervisorDirectory(FileProvider, SupervisorProvider):
    """A directory with ``status.json`` (an ``ops.supervisor_status`` result) and
    ``events.jsonl`` (the supervisor event log)."""

    def supervisor_status(self) -> Evidence[SupervisorStatus]:
        path = self.path / SUPERVISOR_STATUS_FILE
        return document_evidence(
            self._read_json(path),
            self._source(path),
            parse_supervisor_status,
            method=SUPERVISOR_STATUS_FILE,
            where="",
        )

    def supervisor_events(self, since: datetime | None = None) -> Evidence[SupervisorEvent]:
        path = self.path / SUPERVISOR_EVENTS_FILE
        events, text, start, end = self._read_history(
            path, parse_supervisor_event, lambda e: e.at_ms
        )
        kept = kept_since(events, _since_ms(since))
        return Evidence(kept, self._source(path), text, start, end)


class AlertLedgerFile(FileProvider, AlertLedgerProvider):
    """An alert ledger as JSON lines; a later line with the same ``alert_id`` updates the
    earlier one (that is how a resolution is recorded), within :class:`AlertLedger`'s rules: a
    line that lowers a severity, reopens or re-dates a resolution or moves a creation time is
    malformed, naming the line and the alert."""

    def alert_entries(self, since: datetime | None = None) -> Evidence[AlertEntry]:
        ledger = AlertLedger()
        _lines, text, start, end = self._read_history(
            self.path,
            ledger.add,
            lambda e: max(e.created_at_ms, e.resolved_at_ms or 0),
        )
        floor = _since_ms(since)
        kept = tuple(
            e for e in ledger.entries() if e.resolved_at_ms is None or e.resolved_at_ms >= floor
        )
        return Evidence(kept, self._source(self.path), text, start, end)


class CursorStatsFile(FileProvider, CursorStatsProvider):
    """A JSON file holding an ``ops.cursor_stats`` result."""

    def cursor_stats(self) -> Evidence[CursorStats]:
        return document_evidence(
            self._read_json(self.path),
            self._source(self.path),
            parse_cursor_stats,
            method=None,
            where="",
        )


class BindingStatsFile(FileProvider, BindingStatsProvider):
    """A JSON file holding an ``ops.binding_stats`` result."""

    def binding_stats(self) -> Evidence[BindingStats]:
        return document_evidence(
            self._read_json(self.path),
            self._source(self.path),
            parse_binding_stats,
            method=None,
            where="",
        )


class RuntimeSelectorFile(FileProvider, RuntimeSelectorProvider):
    """The runtime selector TOML with its ``[runtime]`` table. When the routing last changed
    (``changed_at_ms``) is the file's modification time: rewriting the file, even unchanged,
    moves it later, never earlier (a ``changed_at_ms`` key in the table is ignored)."""

    def runtime_selector(self) -> Evidence[RuntimeSelector]:
        with self._open(self.path) as selector_file:  # the modification time of what was read
            data = selector_file.read()
            modified_ms = selector_file.mtime_ns // 1_000_000
        text = self._decode(self.path, data)
        try:
            table = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ProtocolError(self.uri, None, f"{self.path} is not TOML: {exc}") from None
        if "runtime" not in table:
            raise ProtocolError(self.uri, None, f"{self.path} has no [runtime] table")
        evidence = document_evidence(
            table["runtime"],
            self._source(self.path),
            parse_runtime_selector,
            method=None,
            where="",
            key="runtime",
        )
        selector = replace(evidence.one(), changed_at_ms=modified_ms)
        return Evidence((selector,), evidence.source, text)


class DaemonLogFile(FileProvider, DaemonLogProvider):
    """The daemon's stdout log; coverage is its first..last timestamp.

    Read as a stream, line by line: every line is checked and counts towards the coverage, but
    only the lines at or after ``since`` are kept, and they alone are the raw evidence (at most
    :data:`MAX_LOG_KEPT_BYTES`), so memory and the bundle grow with the window, not the log."""

    def log_events(self, since: datetime | None = None) -> Evidence[LogEvent]:
        scanner = LogScanner(since, max_kept_bytes=MAX_LOG_KEPT_BYTES)
        with self._open(self.path, max_bytes=MAX_LOG_BYTES, seconds=LOG_SECONDS) as log:
            try:
                scanner.feed_all(_log_lines(log))
                scanner.finish()
            except RecordError as exc:
                raise malformed(self.uri, None, "", exc) from None
        return Evidence(
            tuple(scanner.events),
            self._source(self.path),
            scanner.kept_text,
            scanner.first,
            scanner.last,
        )


def _log_lines(log: TrustedFile) -> Iterator[str]:
    """The lines of ``log`` as text (bad UTF-8 replaced), without their newline; a line longer
    than :data:`MAX_LOG_LINE_BYTES` is cut there and says how many bytes were left out."""
    limit = MAX_LOG_LINE_BYTES
    head = b""  # the start of a line not finished yet, at most ``limit`` bytes
    cut = 0  # bytes of that line beyond ``limit``
    while chunk := log.read(_CHUNK):
        pieces = chunk.split(b"\n")
        for piece in pieces[:-1]:
            if not head and not cut and len(piece) <= limit:
                yield piece.decode("utf-8", "replace")
                continue
            room = limit - len(head)
            line, cut = head + piece[:room], cut + max(0, len(piece) - room)
            text = line.decode("utf-8", "replace")
            yield f"{text} [{cut} more bytes of this line not read]" if cut else text
            head, cut = b"", 0
        tail = pieces[-1]
        room = limit - len(head)
        head, cut = head + tail[:room], cut + max(0, len(tail) - room)
    if head or cut:
        text = head.decode("utf-8", "replace")
        yield f"{text} [{cut} more bytes of this line not read]" if cut else text


class JUnitFile(FileProvider, BuildResultProvider):
    """A JUnit XML report of the v5 build, parsed as a stream (see
    :mod:`~pytest_canarygate.agtmux.providers.junit`). The raw evidence is the report itself
    up to :data:`JUNIT_ATTACH_BYTES`, else its size and sha256."""

    def build_result(self) -> Evidence[BuildResult]:
        with self._open(self.path) as report_file:
            try:
                report = read_junit(report_file, keep_bytes=JUNIT_ATTACH_BYTES)
            except RecordError as exc:
                raise malformed(self.uri, None, "", exc) from None
        raw = report.text
        if raw is None:
            raw = (
                f"<!-- {self.path}: {report.size} bytes, sha256 {report.sha256}; larger than "
                f"{JUNIT_ATTACH_BYTES} bytes, so not attached. Every byte of it was read for "
                "the totals. -->\n"
            )
        return Evidence((report.result,), self._source(self.path), raw)


class ArchiveManifestFile(FileProvider, ArchiveProvider):
    """An archive manifest JSON ``{binary, sha256, archived_at_ms, retain_until_ms}``; the
    binary it names must sit beside it. A binary that is not there is reported in the record
    (``present`` False), not raised: a deleted archive is a finding, not missing evidence. The
    binary gets the trust rule too, and is hashed within :data:`MAX_ARCHIVE_BYTES` and
    :data:`ARCHIVE_SECONDS`: a FIFO, a device or a link to one is refused, never read."""

    def archive_manifest(self) -> Evidence[ArchiveManifest]:
        payload = self._read_json(self.path)
        evidence = document_evidence(
            payload, self._source(self.path), parse_archive_manifest, method=None, where=""
        )
        manifest = evidence.one()
        binary = self.path.parent / manifest.binary
        try:
            digest, size = self._sha256(binary)
        except EvidenceMissing:  # not there (or a link to nothing): a finding, not missing evidence
            return Evidence((manifest,), evidence.source, payload)
        checked = replace(manifest, present=True, actual_sha256=digest, size_bytes=size)
        return Evidence((checked,), evidence.source, payload)

    def _sha256(self, path: Path) -> tuple[str, int]:
        digest = hashlib.sha256()
        with self._open(
            path,
            max_bytes=MAX_ARCHIVE_BYTES,
            seconds=ARCHIVE_SECONDS,
            expected="the archived binary",
            hint="is this really the archived v4 binary?",
        ) as binary:
            while chunk := binary.read(_CHUNK):
                digest.update(chunk)
            return digest.hexdigest(), binary.bytes_read
