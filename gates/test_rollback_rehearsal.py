"""Rollback rehearsal: the rollback procedure tested as a dry-run, changing nothing.

Runbook: "Rollback Procedure" and "Post-Rollback", asked for by the Pre-Canary Checklist (#4) and
the Canary Gate Checklist as "Rollback procedure tested (dry-run)". These gates are of stage
"rehearsal": they run only with ``--phase=rollback --canarygate-stage=rehearsal``, never in a
plain rollback run, and their bundle is never a rollback (``chain.find_rehearsal`` finds it).
Each judges whether a step could be carried out now: the runtime selector file can be written by
the operator running the check (checked with os.access, nothing written), v4 is up, ready and
serves every canary session's panes, v4's sources are active, and v5 can still be snapshotted.
"""

from __future__ import annotations

from pytest_canarygate.agtmux.gate_api import AgtmuxSettings
from pytest_canarygate.agtmux.gate_api import ObservedView
from pytest_canarygate.agtmux.gate_api import conclude
from pytest_canarygate.agtmux.gate_api import daemon_sources
from pytest_canarygate.agtmux.gate_api import gate
from pytest_canarygate.agtmux.gate_api import selector_switchable
from pytest_canarygate.agtmux.gate_api import v4_takes_canary_back
from pytest_canarygate.agtmux.gate_api import v5_snapshot_possible


@gate("rollback.rehearsal.selector-writable")
def test_rehearse_switching_the_selector_back_to_v4(canarygate_observed: ObservedView) -> None:
    conclude(canarygate_observed, "selector", selector_switchable(canarygate_observed))


@gate("rollback.rehearsal.v4-serves-canary")
def test_rehearse_canary_sessions_reconnecting_to_v4(canarygate_observed: ObservedView) -> None:
    conclude(
        canarygate_observed, "v4 takes the canary back", v4_takes_canary_back(canarygate_observed)
    )


@gate("rollback.rehearsal.v4-sources-active")
def test_rehearse_v4_source_health_active(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    conclude(
        canarygate_observed, "sources", daemon_sources(canarygate_observed, agtmux_settings, "v4")
    )


@gate("rollback.rehearsal.v5-snapshot-possible")
def test_rehearse_a_v5_snapshot_before_stopping(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    conclude(
        canarygate_observed,
        "v5 snapshot",
        v5_snapshot_possible(canarygate_observed, agtmux_settings),
    )
