"""The agtmux simulator: real daemon processes on real Unix sockets, driven by scenario files.

``start_fleet("healthy", phase="canary")`` starts a v4 and a v5 daemon and returns a
:class:`SimFleet` with their ``unix://`` endpoints and, in ``SimFleet.evidence``, where each kind
of the v5 deployment's operations evidence is read (the v5 socket's ``ops.*`` methods, an HTTP
server on 127.0.0.1, files); ``list_scenarios()`` and ``load_scenario()`` read the bundled
scenarios.
"""

from __future__ import annotations

from pytest_canarygate.agtmux.sim.launcher import SimFleet
from pytest_canarygate.agtmux.sim.launcher import SimulatorError
from pytest_canarygate.agtmux.sim.launcher import start_fleet
from pytest_canarygate.agtmux.sim.scenario import Scenario
from pytest_canarygate.agtmux.sim.scenario import list_scenarios
from pytest_canarygate.agtmux.sim.scenario import load_scenario

__all__ = [
    "Scenario",
    "SimFleet",
    "SimulatorError",
    "list_scenarios",
    "load_scenario",
    "start_fleet",
]
