"""Evidence read from local files (``file://``); formats in ``docs/operations-contract.md``.

A missing file or directory raises :class:`NotServed`, an unreadable one
:class:`TransportError`, malformed content :class:`ProtocolError` naming the file and the line
(JSON lines, logs) or the key (JSON, TOML).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TypeVar

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
from pytest_canarygate.agtmux.providers.daemon_log import parse_log
from pytest_canarygate.agtmux.providers.junit import parse_junit
from pytest_canarygate.agtmux.providers.ops import document_evidence
from pytest_canarygate.agtmux.providers.ops import malformed
from pytest_canarygate.agtmux.records import AlertEntry
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
from pytest_canarygate.agtmux.records import datetime_to_ms
from pytest_canarygate.agtmux.records import ms_to_datetime
from pytest_canarygate.agtmux.records import parse_alert_entry
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
from pytest_canarygate.errors import NotServed
from pytest_canarygate.errors import ProtocolError
from pytest_canarygate.errors import TransportError
from pytest_canarygate.tomlfile import tomllib

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


#: The most that is read from one evidence file (a larger log must be rotated first).
MAX_FILE_BYTES = 256 * 1024 * 1024


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

    def _what(self, path: Path) -> str | None:
        return None if path == self.path else path.name

    def _source(self, path: Path) -> Source:
        return Source(self.uri, str(path))

    def _read_bytes(self, path: Path) -> bytes:
        try:
            # O_NONBLOCK: a FIFO put where a file should be must not hang the observation.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as handle:
                info = os.fstat(handle.fileno())
                if stat.S_ISDIR(info.st_mode):
                    raise IsADirectoryError(path)
                if not stat.S_ISREG(info.st_mode):
                    raise TransportError(
                        self.uri, self._what(path), f"{path} is not a regular file"
                    )
                if info.st_size > MAX_FILE_BYTES:
                    raise ProtocolError(
                        self.uri,
                        self._what(path),
                        f"{path} is {info.st_size} bytes, more than the {MAX_FILE_BYTES} read "
                        "as evidence (rotate the log, or point at a smaller file)",
                    )
                return handle.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            raise NotServed(self.uri, self._what(path), f"no such file: {path}") from None
        except IsADirectoryError:
            raise TransportError(
                self.uri, self._what(path), f"{path} is a directory, expected a file"
            ) from None
        except OSError as exc:
            raise TransportError(
                self.uri, self._what(path), f"cannot read {path}: {exc.strerror or exc}"
            ) from None

    def _read_text(self, path: Path, *, lenient: bool = False) -> str:
        data = self._read_bytes(path)
        try:
            return data.decode("utf-8", "replace" if lenient else "strict")
        except UnicodeDecodeError as exc:
            raise ProtocolError(
                self.uri, self._what(path), f"{path} is not UTF-8 (byte {exc.start})"
            ) from None

    def _read_json(self, path: Path) -> object:
        text = self._read_text(path)
        try:
            return json.loads(text)
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
                value = json.loads(line)
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
        try:
            paths = sorted(p for p in self.path.iterdir() if p.suffix == ".json" and p.is_file())
        except FileNotFoundError:
            raise NotServed(self.uri, None, f"no such directory: {self.path}") from None
        except OSError as exc:
            raise TransportError(
                self.uri, None, f"cannot list {self.path}: {exc.strerror or exc}"
            ) from None
        records: list[SnapshotMetadata] = []
        raw: dict[str, object] = {}
        for path in paths:
            raw[path.name] = payload = self._read_json(path)
            try:
                records.append(parse_snapshot(payload))
            except RecordError as exc:
                raise malformed(self.uri, path.name, "", exc) from None
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
        floor = _since_ms(since)
        kept = tuple(e for e in events if e.at_ms >= floor)
        return Evidence(kept, self._source(path), text, start, end)


class AlertLedgerFile(FileProvider, AlertLedgerProvider):
    """An alert ledger as JSON lines; a later line with the same ``alert_id`` replaces the
    earlier one (that is how a resolution is recorded)."""

    def alert_entries(self, since: datetime | None = None) -> Evidence[AlertEntry]:
        entries, text, start, end = self._read_history(
            self.path,
            parse_alert_entry,
            lambda e: max(e.created_at_ms, e.resolved_at_ms or 0),
        )
        latest: dict[str, AlertEntry] = {}
        for entry in entries:
            latest[entry.alert_id] = entry
        floor = _since_ms(since)
        kept = tuple(
            e for e in latest.values() if e.resolved_at_ms is None or e.resolved_at_ms >= floor
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
        text = self._read_text(self.path)
        try:
            modified_ms = self.path.stat().st_mtime_ns // 1_000_000
        except OSError as exc:
            raise TransportError(
                self.uri, None, f"cannot stat {self.path}: {exc.strerror or exc}"
            ) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ProtocolError(self.uri, None, f"{self.path} is not TOML: {exc}") from None
        if "runtime" not in data:
            raise ProtocolError(self.uri, None, f"{self.path} has no [runtime] table")
        evidence = document_evidence(
            data["runtime"],
            self._source(self.path),
            parse_runtime_selector,
            method=None,
            where="",
            key="runtime",
        )
        selector = replace(evidence.one(), changed_at_ms=modified_ms)
        return Evidence((selector,), evidence.source, text)


class DaemonLogFile(FileProvider, DaemonLogProvider):
    """The daemon's stdout log; coverage is its first..last timestamp."""

    def log_events(self, since: datetime | None = None) -> Evidence[LogEvent]:
        text = self._read_text(self.path, lenient=True)
        try:
            events, first, last = parse_log(text.splitlines())
        except RecordError as exc:
            raise malformed(self.uri, None, "", exc) from None
        kept = tuple(e for e in events if since is None or e.at >= since)
        return Evidence(kept, self._source(self.path), text, first, last)


class JUnitFile(FileProvider, BuildResultProvider):
    """A JUnit XML report of the v5 build."""

    def build_result(self) -> Evidence[BuildResult]:
        data = self._read_bytes(self.path)
        try:
            result = parse_junit(data)
        except RecordError as exc:
            raise malformed(self.uri, None, "", exc) from None
        return Evidence((result,), self._source(self.path), data.decode("utf-8"))


class ArchiveManifestFile(FileProvider, ArchiveProvider):
    """An archive manifest JSON ``{binary, sha256, archived_at_ms, retain_until_ms}``; the
    binary it names must sit beside it. A binary that is not there is reported in the record
    (``present`` False), not raised: a deleted archive is a finding, not missing evidence."""

    def archive_manifest(self) -> Evidence[ArchiveManifest]:
        payload = self._read_json(self.path)
        evidence = document_evidence(
            payload, self._source(self.path), parse_archive_manifest, method=None, where=""
        )
        manifest = evidence.one()
        binary = self.path.parent / manifest.binary
        if not binary.exists():
            return Evidence((manifest,), evidence.source, payload)
        digest, size = self._sha256(binary)
        checked = replace(manifest, present=True, actual_sha256=digest, size_bytes=size)
        return Evidence((checked,), evidence.source, payload)

    def _sha256(self, path: Path) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        try:
            with path.open("rb") as stream:
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
        except IsADirectoryError:
            raise TransportError(
                self.uri, path.name, f"{path} is a directory, expected the archived binary"
            ) from None
        except OSError as exc:
            raise TransportError(
                self.uri, path.name, f"cannot read {path}: {exc.strerror or exc}"
            ) from None
        return digest.hexdigest(), size
