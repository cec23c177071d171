"""Hooks for packs and teams that extend canarygate: runbook packs, providers, extra catalogs
and reactions to a finished run.

Implement them in a ``conftest.py`` or in a plugin package; every name is prefixed
``pytest_canarygate_``. The plugin adds these specs through ``pytest_addhooks``. A plugin that
may be loaded without canarygate marks its implementations ``@pytest.hookimpl(optionalhook=True)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import pytest

if TYPE_CHECKING:
    from pytest_canarygate.observation import Observation
    from pytest_canarygate.pack import Pack
    from pytest_canarygate.provider import Timeouts
    from pytest_canarygate.results import RunOutcome


@pytest.hookspec
def pytest_canarygate_packs(config: pytest.Config) -> Sequence[Pack]:
    """Return the runbook packs this plugin provides (see :class:`pytest_canarygate.pack.Pack`).

    A run uses the pack its config names (``[migration] pack = "<name>"``), or the only pack
    installed. Every implementation is called; their lists are joined::

        @pytest.hookimpl(optionalhook=True)
        def pytest_canarygate_packs(config):
            return [Pack(name="kv", catalog=HERE / "catalog.toml", daemons=("old", "new"))]

    .. versionadded:: 0.1
    """


@pytest.hookspec(firstresult=True)
def pytest_canarygate_make_provider(
    config: pytest.Config, kind: str, uri: str, timeouts: Timeouts
) -> Any | None:
    """Return the provider that reads ``kind`` of evidence from ``uri``, or None to leave it
    to the next implementation. Implementations in conftest files and later plugins run
    before the pack's own, so yours wins for the URIs you claim::

        def pytest_canarygate_make_provider(config, kind, uri, timeouts):
            if kind == "alerts" and uri.startswith("https://alerts.example/"):
                return MyLedgerProvider(uri, timeouts)

    The provider must implement the interface the pack's accessor for ``kind`` calls, and be
    a context manager (see :class:`pytest_canarygate.provider.Provider`). While any plugin
    other than a pack implements this hook, the config's evidence URIs are not checked against
    the schemes the pack reads (yours may read others); a URI nobody claims still fails when
    the run reads it.

    .. versionadded:: 0.1
    """


@pytest.hookspec
def pytest_canarygate_catalog_paths(config: pytest.Config) -> Sequence[Path]:
    """Return extra gate catalogs (TOML files like the pack's ``catalog.toml``) to merge into
    the run's catalog: how a package adds runbook items and the gates that judge them. Ids
    must not clash with the pack's; phases are the pack's. Gates themselves are test modules
    marked ``@gate(id)``.

    .. versionadded:: 0.1
    """


@pytest.hookspec
def pytest_canarygate_observation_ready(config: pytest.Config, observation: Observation) -> None:
    """Called once on the controller when the run's observation has been taken and written,
    before any gate runs: before collection under xdist or with ``[[targets]]``, once
    collection ends in a serial run (which collects while the later readings are taken).
    ``observation`` is a private copy: changing it changes nothing the gates judge.

    .. versionadded:: 0.1
    """


@pytest.hookspec
def pytest_canarygate_run_finished(
    config: pytest.Config, outcome: RunOutcome, bundle: Path, summary: dict[str, Any]
) -> None:
    """Called once on the controller after the bundle is sealed: ``outcome`` holds every
    verdict, ``bundle`` the sealed folder, ``summary`` the run.json contents. Both are private
    copies: use them to notify or archive; no verdict can be changed here.

    .. versionadded:: 0.1
    """
