"""Which provider reads which kind of evidence from which URI scheme.

A fixed table: teams add providers of their own through the ``pytest_canarygate_make_provider``
hook, which runs before the pack's. Factories import their module lazily, so ``requests`` is only
imported when an HTTP endpoint is configured.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from typing import Literal
from typing import overload

from pytest_canarygate.agtmux.providers.base import AlertLedgerProvider
from pytest_canarygate.agtmux.providers.base import ArchiveProvider
from pytest_canarygate.agtmux.providers.base import BindingStatsProvider
from pytest_canarygate.agtmux.providers.base import BuildResultProvider
from pytest_canarygate.agtmux.providers.base import CursorStatsProvider
from pytest_canarygate.agtmux.providers.base import DaemonLogProvider
from pytest_canarygate.agtmux.providers.base import Kind
from pytest_canarygate.agtmux.providers.base import Provider
from pytest_canarygate.agtmux.providers.base import RuntimeSelectorProvider
from pytest_canarygate.agtmux.providers.base import SnapshotProvider
from pytest_canarygate.agtmux.providers.base import SupervisorProvider
from pytest_canarygate.agtmux.providers.base import Timeouts
from pytest_canarygate.endpoints import parse_endpoint
from pytest_canarygate.errors import ConfigError

__all__ = [
    "INTERFACES",
    "ProviderFactory",
    "make_provider",
    "registered_schemes",
]

ProviderFactory = Callable[[str, Timeouts], Provider]
"""Builds a provider from ``(uri, timeouts)``; must return an instance of the kind's interface."""

INTERFACES: Mapping[str, type[Provider]] = {
    Kind.SNAPSHOTS.value: SnapshotProvider,
    Kind.SUPERVISOR.value: SupervisorProvider,
    Kind.ALERTS.value: AlertLedgerProvider,
    Kind.CURSOR.value: CursorStatsProvider,
    Kind.BINDING.value: BindingStatsProvider,
    Kind.SELECTOR.value: RuntimeSelectorProvider,
    Kind.DAEMON_LOG.value: DaemonLogProvider,
    Kind.BUILD.value: BuildResultProvider,
    Kind.ARCHIVE.value: ArchiveProvider,
}
"""The interface each kind's provider implements."""


def _kind_name(kind: str) -> str:
    name = kind.value if isinstance(kind, Kind) else kind
    if name not in INTERFACES:
        raise ConfigError(f"unknown evidence kind {name!r}; known: {', '.join(INTERFACES)}")
    return name


def registered_schemes(kind: str) -> tuple[str, ...]:
    """The URI schemes that have a provider for ``kind``, sorted."""
    name = _kind_name(kind)
    return tuple(sorted(scheme for k, scheme in _REGISTRY if k == name))


@overload
def make_provider(
    kind: Literal[Kind.SNAPSHOTS, "snapshots"], uri: str, *, timeouts: Timeouts = ...
) -> SnapshotProvider: ...
@overload
def make_provider(
    kind: Literal[Kind.SUPERVISOR, "supervisor"], uri: str, *, timeouts: Timeouts = ...
) -> SupervisorProvider: ...
@overload
def make_provider(
    kind: Literal[Kind.ALERTS, "alerts"], uri: str, *, timeouts: Timeouts = ...
) -> AlertLedgerProvider: ...
@overload
def make_provider(
    kind: Literal[Kind.CURSOR, "cursor"], uri: str, *, timeouts: Timeouts = ...
) -> CursorStatsProvider: ...
@overload
def make_provider(
    kind: Literal[Kind.BINDING, "binding"], uri: str, *, timeouts: Timeouts = ...
) -> BindingStatsProvider: ...
@overload
def make_provider(
    kind: Literal[Kind.SELECTOR, "selector"], uri: str, *, timeouts: Timeouts = ...
) -> RuntimeSelectorProvider: ...
@overload
def make_provider(
    kind: Literal[Kind.DAEMON_LOG, "daemon_log"], uri: str, *, timeouts: Timeouts = ...
) -> DaemonLogProvider: ...
@overload
def make_provider(
    kind: Literal[Kind.BUILD, "build"], uri: str, *, timeouts: Timeouts = ...
) -> BuildResultProvider: ...
@overload
def make_provider(
    kind: Literal[Kind.ARCHIVE, "archive"], uri: str, *, timeouts: Timeouts = ...
) -> ArchiveProvider: ...
@overload
def make_provider(kind: str, uri: str, *, timeouts: Timeouts = ...) -> Provider: ...
def make_provider(kind: str, uri: str, *, timeouts: Timeouts = Timeouts()) -> Provider:  # noqa: B008 - frozen
    """Build the provider of ``kind`` for ``uri``, chosen by the URI's scheme.

    An unknown kind, a malformed URI or a scheme no provider reads for that kind raises
    :class:`ConfigError` naming them and what is accepted.
    """
    name = _kind_name(kind)
    scheme = parse_endpoint(uri).scheme
    factory = _REGISTRY.get((name, scheme))
    if factory is None:
        accepted = ", ".join(f"{s}://" for s in registered_schemes(name)) or "none"
        raise ConfigError(
            f"no provider reads {name!r} evidence from {scheme}:// ({uri}); accepted: {accepted}"
        )
    provider = factory(uri, timeouts)
    interface = INTERFACES[name]
    if not isinstance(provider, interface):
        raise TypeError(
            f"provider factory {factory!r} for {name!r} returned {provider!r}, "
            f"not a {interface.__name__}"
        )
    return provider


def _unix(uri: str, timeouts: Timeouts) -> Provider:
    from pytest_canarygate.agtmux.providers.rpc import RpcOpsProvider

    return RpcOpsProvider(uri, timeouts)


def _http(uri: str, timeouts: Timeouts) -> Provider:
    from pytest_canarygate.agtmux.providers.http import HttpOpsProvider

    return HttpOpsProvider(uri, timeouts)


def _file(class_name: str) -> ProviderFactory:
    def factory(uri: str, timeouts: Timeouts) -> Provider:
        from pytest_canarygate.agtmux.providers import files

        cls: type[files.FileProvider] = getattr(files, class_name)
        return cls(uri, timeouts)

    factory.__qualname__ = f"file:{class_name}"
    return factory


_FILE_CLASSES = {
    Kind.SNAPSHOTS: "SnapshotDirectory",
    Kind.SUPERVISOR: "SupervisorDirectory",
    Kind.ALERTS: "AlertLedgerFile",
    Kind.CURSOR: "CursorStatsFile",
    Kind.BINDING: "BindingStatsFile",
    Kind.SELECTOR: "RuntimeSelectorFile",
    Kind.DAEMON_LOG: "DaemonLogFile",
    Kind.BUILD: "JUnitFile",
    Kind.ARCHIVE: "ArchiveManifestFile",
}
_OPS_KINDS = (
    Kind.SNAPSHOTS,
    Kind.SUPERVISOR,
    Kind.ALERTS,
    Kind.CURSOR,
    Kind.BINDING,
    Kind.SELECTOR,
)

_REGISTRY: Mapping[tuple[str, str], ProviderFactory] = {
    **{(kind.value, "file"): _file(name) for kind, name in _FILE_CLASSES.items()},
    **{(kind.value, "unix"): _unix for kind in _OPS_KINDS},
    **{(kind.value, scheme): _http for kind in _OPS_KINDS for scheme in ("http", "https")},
}
