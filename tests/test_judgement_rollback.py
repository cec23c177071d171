"""RB-2 / RB-3a: after a rollback every session v5 served is on v4 with its panes managed, and
v4's list_panes serves those panes as v5 served them (by pane id)."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_canarygate.agtmux.judgement.fleet import panes_as_served
from pytest_canarygate.agtmux.judgement.fleet import sessions_back_on
from pytest_canarygate.verdicts import Verdict


def pane(pane_id: str, session: str | None, *, managed: bool = True, **extra: Any) -> dict:
    fields: dict[str, Any] = {
        "pane_id": pane_id,
        "presence": "managed" if managed else "unmanaged",
        "session_id": None if session is None else f"${session}",
        "session_name": session,
        "window_id": "@0",
    }
    if managed:
        fields |= {"provider": "claude", "activity_state": "Idle", "evidence_mode": "heuristic"}
    return fields | extra


V5 = [
    pane("%1", "alpha"),
    pane("%2", "alpha", managed=False),
    pane("%3", "beta"),
    pane("%4", "beta"),
    pane("%5", "gamma", managed=False),  # v5 manages nothing here: not a session it served
    pane("%9", None),  # a ghost: no named session
]


def test_every_session_v5_served_on_v4_with_its_panes_managed_passes() -> None:
    v4 = [dict(p, activity_state="Running") if p["presence"] == "managed" else p for p in V5]
    judged = sessions_back_on(V5, v4)
    assert judged.verdict is Verdict.PASS
    assert "alpha (1 panes), beta (2 panes)" in judged.message
    assert panes_as_served(V5, v4).verdict is Verdict.PASS  # activity is each daemon's own


def test_a_session_missing_on_v4_fails_naming_it() -> None:
    v4 = [p for p in V5 if p["session_name"] != "beta"]
    judged = sessions_back_on(V5, v4)
    assert judged.verdict is Verdict.FAIL
    assert "session beta is not on v4 (v5 manages 2 panes in it)" in judged.message
    listed = panes_as_served(V5, v4)
    assert listed.verdict is Verdict.FAIL
    assert "pane %3 (beta): not in v4 list_panes; pane %4 (beta): not in v4" in listed.message


def test_a_session_on_v4_with_a_pane_unmanaged_or_missing_fails() -> None:
    v4 = [
        pane("%1", "alpha"),
        pane("%2", "alpha", managed=False),
        pane("%3", "beta", managed=False),
    ]
    judged = sessions_back_on(V5, v4)
    assert judged.verdict is Verdict.FAIL
    assert "session beta: v4 does not manage panes %3 that v5 manages" in judged.message
    assert "session beta: panes %4 are not on v4" in judged.message
    listed = panes_as_served(V5, v4)
    assert "pane %3 (beta): presence v5='managed' v4='unmanaged'" in listed.message


@pytest.mark.parametrize(
    ("field", "value"),
    [("provider", "codex"), ("session_name", "delta"), ("window_id", "@7"), ("session_id", "$x")],
)
def test_a_pane_listed_differently_from_what_v5_served_fails(field: str, value: str) -> None:
    v4 = [dict(p, **{field: value}) if p["pane_id"] == "%4" else p for p in V5]
    judged = panes_as_served(V5, v4)
    assert judged.verdict is Verdict.FAIL
    assert f"pane %4 (beta): {field} v5=" in judged.message
    assert f"v4={value!r}" in judged.message


def test_nothing_served_on_v5_shows_nothing() -> None:
    unmanaged = [pane("%1", "alpha", managed=False), pane("%9", None)]
    assert sessions_back_on(unmanaged, unmanaged).verdict is Verdict.INCONCLUSIVE
    assert panes_as_served(unmanaged, unmanaged).verdict is Verdict.INCONCLUSIVE
    assert sessions_back_on([], V5).verdict is Verdict.INCONCLUSIVE


def test_hostile_pane_ids_do_not_collide() -> None:
    """A v4 pane without an id, or with a non-string one, never stands in for a v5 pane."""
    v5 = [pane("%1", "alpha")]
    v4 = [pane("%1", "alpha") | {"pane_id": 1}, {"session_name": "alpha", "presence": "managed"}]
    assert sessions_back_on(v5, v4).verdict is Verdict.FAIL
    assert panes_as_served(v5, v4).verdict is Verdict.FAIL
