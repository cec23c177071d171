"""What every provider returns (:class:`Evidence`) and one interface per kind of evidence.

A provider reads one kind of evidence from one endpoint. A single object may implement several
interfaces (the ``unix://`` and ``http(s)://`` providers serve every operations method), so the
interfaces use distinct method names. Failures raise the
:class:`~pytest_canarygate.errors.EndpointError` subclasses; nothing is returned on failure.
"""

from __future__ import annotations

from abc import abstractmethod
from datetime import datetime
from enum import Enum
from typing import TypeVar

from pytest_canarygate.agtmux.records import AlertEntry
from pytest_canarygate.agtmux.records import ArchiveManifest
from pytest_canarygate.agtmux.records import BindingStats
from pytest_canarygate.agtmux.records import BuildResult
from pytest_canarygate.agtmux.records import CursorStats
from pytest_canarygate.agtmux.records import LogEvent
from pytest_canarygate.agtmux.records import RuntimeSelector
from pytest_canarygate.agtmux.records import SnapshotMetadata
from pytest_canarygate.agtmux.records import SupervisorEvent
from pytest_canarygate.agtmux.records import SupervisorStatus
from pytest_canarygate.provider import Evidence
from pytest_canarygate.provider import Provider
from pytest_canarygate.provider import Source
from pytest_canarygate.provider import Timeouts

__all__ = [
    "AlertLedgerProvider",
    "ArchiveProvider",
    "BindingStatsProvider",
    "BuildResultProvider",
    "CursorStatsProvider",
    "DaemonLogProvider",
    "Evidence",
    "Kind",
    "Provider",
    "RuntimeSelectorProvider",
    "SnapshotProvider",
    "Source",
    "SupervisorProvider",
    "Timeouts",
]

R = TypeVar("R")
_P = TypeVar("_P", bound="Provider")


class Kind(str, Enum):
    """The kinds of evidence a provider can be asked for (the config names them so)."""

    SNAPSHOTS = "snapshots"
    SUPERVISOR = "supervisor"
    ALERTS = "alerts"
    CURSOR = "cursor"
    BINDING = "binding"
    SELECTOR = "selector"
    DAEMON_LOG = "daemon_log"
    BUILD = "build"
    ARCHIVE = "archive"

    def __str__(self) -> str:
        return self.value


class SnapshotProvider(Provider):
    """Snapshot metadata (daemon facts 4.1)."""

    @abstractmethod
    def snapshots(self) -> Evidence[SnapshotMetadata]:
        """Every retained snapshot, oldest first."""


class SupervisorProvider(Provider):
    """Supervisor status and its event history (daemon facts 5)."""

    @abstractmethod
    def supervisor_status(self) -> Evidence[SupervisorStatus]:
        """The current state, policy, startup order and dependency gates (one record)."""

    @abstractmethod
    def supervisor_events(self, since: datetime | None = None) -> Evidence[SupervisorEvent]:
        """Supervisor events from ``since`` on (all when None), with their coverage."""


class AlertLedgerProvider(Provider):
    """The alert ledger (daemon facts 6)."""

    @abstractmethod
    def alert_entries(self, since: datetime | None = None) -> Evidence[AlertEntry]:
        """Entries open at or created after ``since`` (all when None), with their coverage."""


class CursorStatsProvider(Provider):
    """Gateway cursor watermarks and invalid-cursor counters (daemon facts 8)."""

    @abstractmethod
    def cursor_stats(self) -> Evidence[CursorStats]:
        """The counters (one record); coverage is the span they were counted over."""


class BindingStatsProvider(Provider):
    """Binding-projection CAS conflict counter (daemon facts 10)."""

    @abstractmethod
    def binding_stats(self) -> Evidence[BindingStats]:
        """The counter (one record); coverage is the span it was counted over."""


class RuntimeSelectorProvider(Provider):
    """The runtime selector's ``[runtime]`` table (daemon facts 11)."""

    @abstractmethod
    def runtime_selector(self) -> Evidence[RuntimeSelector]:
        """The selector (one record)."""


class DaemonLogProvider(Provider):
    """The daemon's own stdout log, classified (daemon facts 5.4, 6.5)."""

    @abstractmethod
    def log_events(self, since: datetime | None = None) -> Evidence[LogEvent]:
        """Log lines from ``since`` on (all when None); coverage is first..last timestamp."""


class BuildResultProvider(Provider):
    """The v5 build's test results."""

    @abstractmethod
    def build_result(self) -> Evidence[BuildResult]:
        """Totals and failing test names (one record)."""


class ArchiveProvider(Provider):
    """The archived v4 binary: its manifest, checked against the file it names."""

    @abstractmethod
    def archive_manifest(self) -> Evidence[ArchiveManifest]:
        """The manifest (one record) with whether the binary is there and its actual sha256."""
