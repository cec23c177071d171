"""Evidence providers: one interface per kind of evidence, one provider per URI scheme.

    make_provider("alerts", "unix:///run/agtmux-v5/agtmuxd.sock").alert_entries(since)

returns :class:`Evidence` holding validated records (frozen dataclasses), the span the history
covers, where it came from and the raw payload. Failures raise
:class:`~pytest_canarygate.errors.EndpointError` subclasses. The operations methods and file
formats are specified in ``docs/operations-contract.md``.
"""

from __future__ import annotations

from pytest_canarygate.agtmux.providers.base import AlertLedgerProvider
from pytest_canarygate.agtmux.providers.base import ArchiveProvider
from pytest_canarygate.agtmux.providers.base import BindingStatsProvider
from pytest_canarygate.agtmux.providers.base import BuildResultProvider
from pytest_canarygate.agtmux.providers.base import CursorStatsProvider
from pytest_canarygate.agtmux.providers.base import DaemonLogProvider
from pytest_canarygate.agtmux.providers.base import Evidence
from pytest_canarygate.agtmux.providers.base import Kind
from pytest_canarygate.agtmux.providers.base import Provider
from pytest_canarygate.agtmux.providers.base import RuntimeSelectorProvider
from pytest_canarygate.agtmux.providers.base import SnapshotProvider
from pytest_canarygate.agtmux.providers.base import Source
from pytest_canarygate.agtmux.providers.base import SupervisorProvider
from pytest_canarygate.agtmux.providers.base import Timeouts
from pytest_canarygate.agtmux.providers.registry import INTERFACES
from pytest_canarygate.agtmux.providers.registry import ProviderFactory
from pytest_canarygate.agtmux.providers.registry import make_provider
from pytest_canarygate.agtmux.providers.registry import registered_schemes
from pytest_canarygate.agtmux.records import AlertEntry
from pytest_canarygate.agtmux.records import ArchiveManifest
from pytest_canarygate.agtmux.records import BindingStats
from pytest_canarygate.agtmux.records import BuildResult
from pytest_canarygate.agtmux.records import CursorStats
from pytest_canarygate.agtmux.records import DependencyGate
from pytest_canarygate.agtmux.records import LogEvent
from pytest_canarygate.agtmux.records import RestartPolicy
from pytest_canarygate.agtmux.records import RuntimeSelector
from pytest_canarygate.agtmux.records import Severity
from pytest_canarygate.agtmux.records import SnapshotMetadata
from pytest_canarygate.agtmux.records import SupervisorEvent
from pytest_canarygate.agtmux.records import SupervisorState
from pytest_canarygate.agtmux.records import SupervisorStatus

__all__ = [
    "INTERFACES",
    "AlertEntry",
    "AlertLedgerProvider",
    "ArchiveManifest",
    "ArchiveProvider",
    "BindingStats",
    "BindingStatsProvider",
    "BuildResult",
    "BuildResultProvider",
    "CursorStats",
    "CursorStatsProvider",
    "DaemonLogProvider",
    "DependencyGate",
    "Evidence",
    "Kind",
    "LogEvent",
    "Provider",
    "ProviderFactory",
    "RestartPolicy",
    "RuntimeSelector",
    "RuntimeSelectorProvider",
    "Severity",
    "SnapshotMetadata",
    "SnapshotProvider",
    "Source",
    "SupervisorEvent",
    "SupervisorProvider",
    "SupervisorState",
    "SupervisorStatus",
    "Timeouts",
    "make_provider",
    "registered_schemes",
]
