"""The agtmux simulator: real daemon processes on real Unix sockets, driven by scenario files.

``start_fleet("healthy")`` starts a v4 and a v5 daemon and returns a :class:`SimFleet` with their
``unix://`` endpoints; ``list_scenarios()`` and ``load_scenario()`` read the bundled scenarios.
"""

from __future__ import annotations

from pytest_canarygate.sim.launcher import SimFleet
from pytest_canarygate.sim.launcher import SimulatorError
from pytest_canarygate.sim.launcher import start_fleet
from pytest_canarygate.sim.scenario import Scenario
from pytest_canarygate.sim.scenario import list_scenarios
from pytest_canarygate.sim.scenario import load_scenario

__all__ = [
    "Scenario",
    "SimFleet",
    "SimulatorError",
    "list_scenarios",
    "load_scenario",
    "start_fleet",
]
