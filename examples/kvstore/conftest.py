"""The kvstore runbook pack: everything the canarygate engine must be told about kvd.

A second runbook, next to agtmux's, to show that the engine gates any runbook: two daemons
(``old`` and ``new``), two read-only methods, one parametrized fixture (a key namespace).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_canarygate.gate import parameter_value
from pytest_canarygate.observation import Observation
from pytest_canarygate.pack import GateParameter
from pytest_canarygate.pack import Pack

HERE = Path(__file__).resolve().parent


def namespaces(observation: Observation) -> list[str] | None:
    """Namespaces the old daemon holds keys in; None if its keys could not be read."""
    daemon = observation.daemons.get("old")
    calls = daemon.readings("kv.keys") if daemon else []
    if not calls or not calls[0].ok or not isinstance(calls[0].result, list):
        return None
    return sorted({k["namespace"] for k in calls[0].result if isinstance(k, dict)})


PACK = Pack(
    name="kvstore",
    catalog=HERE / "gates" / "catalog.toml",
    daemons=("old", "new"),
    bracket_method="kv.info",
    parameters=(
        GateParameter(
            "kv_namespace",
            namespaces,
            unobservable="the old daemon's kv.keys could not be read",
            empty="the old daemon holds no keys",
        ),
    ),
    endpoint_example="unix:///run/kv-old/kvd.sock",
)


@pytest.hookimpl(optionalhook=True)
def pytest_canarygate_packs(config: pytest.Config) -> list[Pack]:
    return [PACK]


@pytest.fixture
def kv_namespace(request: pytest.FixtureRequest) -> str:
    """The key namespace this gate instance judges."""
    return parameter_value(request)
