"""Hooks for teams that extend canarygate: their own providers, gates and reactions.

Implement them in a ``conftest.py`` or in a plugin package. The plugin adds these specs through
``pytest_addhooks``; every name is prefixed ``pytest_canarygate_``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import pytest

if TYPE_CHECKING:
    from pytest_canarygate.agtmux.providers import Provider
    from pytest_canarygate.agtmux.providers import Timeouts
    from pytest_canarygate.observation import Observation
    from pytest_canarygate.results import RunOutcome


@pytest.hookspec(firstresult=True)
def pytest_canarygate_make_provider(
    config: pytest.Config, kind: str, uri: str, timeouts: Timeouts
) -> Provider | None:
    """Return the provider that reads ``kind`` of evidence from ``uri``, or None to leave it
    to the next implementation. The built-in one (by URI scheme: ``unix://``, ``file://``,
    ``http(s)://``) runs last, so yours wins for the URIs you claim::

        def pytest_canarygate_make_provider(config, kind, uri, timeouts):
            if kind == "alerts" and uri.startswith("https://alerts.example/"):
                return MyLedgerProvider(uri, timeouts)

    The provider must implement the kind's interface (``pytest_canarygate.agtmux.providers``).

    .. versionadded:: 0.1
    """


def pytest_canarygate_catalog_paths(config: pytest.Config) -> list[Path]:
    """Return extra gate catalogs (TOML files like ``gates/catalog.toml``) to merge into the
    run's catalog: how a package adds runbook items and the gates that judge them. Ids must
    not clash with the main catalog's. Gates themselves are test modules marked ``@gate(id)``.

    .. versionadded:: 0.1
    """
    return []


def pytest_canarygate_observation_ready(config: pytest.Config, observation: Observation) -> None:
    """Called once on the controller when the run's observation has been taken and written,
    before collection. Read-only: gates judge exactly this observation.

    .. versionadded:: 0.1
    """


def pytest_canarygate_run_finished(
    config: pytest.Config, outcome: RunOutcome, bundle: Path, summary: dict[str, Any]
) -> None:
    """Called once on the controller after the bundle is sealed: ``outcome`` holds every
    verdict, ``bundle`` the sealed folder, ``summary`` the run.json contents. Use it to notify
    or archive; it cannot change a verdict.

    .. versionadded:: 0.1
    """
