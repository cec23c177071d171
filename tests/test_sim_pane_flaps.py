"""The simulator's flapping panes (``pane_flaps``): a state that comes and goes between two
readings, served by a real process and logged in its change log like any state change."""

from __future__ import annotations

from pathlib import Path

import pytest
from sim_helpers import result

from pytest_canarygate.agtmux.sim import start_fleet
from pytest_canarygate.agtmux.sim.scenario import load_scenario
from pytest_canarygate.errors import ConfigError


def activity(sock: Path, pane_id: str) -> str:
    return next(p for p in result(sock, "list_panes") if p["pane_id"] == pane_id)["activity_state"]


def test_a_flapping_pane_alternates_and_each_switch_is_a_change() -> None:
    with start_fleet("parity-flapping", daemons=("v4", "v5")) as fleet:
        v4, v5 = fleet.socket_path("v4"), fleet.socket_path("v5")
        before = result(v5, "summary_changed")["version"]
        assert [activity(v5, "%5") for _ in range(4)] == ["Idle", "Running", "Idle", "Running"]
        assert [activity(v4, "%5") for _ in range(2)] == ["Running", "Running"]
        changes = result(v5, "state_changed", {"since_version": before})["changes"]
        assert [(c["pane_id"], c["session_key"]) for c in changes] == [("%5", "poller-%5")] * 4


def test_pane_flaps_must_name_a_managed_pane(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        'extends = "healthy"\ndescription = "x"\n'
        '[[daemons.v5.pane_flaps]]\npane_id = "%0"\nactivity_state = "Idle"\n'
    )
    with pytest.raises(ConfigError, match="not a managed pane this daemon serves"):
        load_scenario(str(path))


def test_pane_flaps_take_only_agent_keys(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        'extends = "healthy"\ndescription = "x"\n'
        '[[daemons.v5.pane_flaps]]\npane_id = "%5"\nsession_name = "elsewhere"\n'
    )
    with pytest.raises(ConfigError, match="session_name"):
        load_scenario(str(path))
