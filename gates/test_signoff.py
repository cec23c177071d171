"""Canary Gate Checklist: the final sign-off before full cutover (judged at cutover entry).

Runbook: "Canary Gate Checklist". The signed exit criteria of phases 1-3 and the tested rollback
are chain-of-custody items, the on-call briefing a human attestation (pending in the catalog).
Gated here: the restore dry-run evidence is retained, and no Escalate alert stayed unresolved in
the last ``windows.escalate_days``.
"""

from __future__ import annotations

from datetime import timedelta

from pytest_canarygate.agtmux.gate_api import AgtmuxSettings
from pytest_canarygate.agtmux.gate_api import AlertEntry
from pytest_canarygate.agtmux.gate_api import CustodyView
from pytest_canarygate.agtmux.gate_api import ObservedView
from pytest_canarygate.agtmux.gate_api import attempt
from pytest_canarygate.agtmux.gate_api import combine
from pytest_canarygate.agtmux.gate_api import conclude
from pytest_canarygate.agtmux.gate_api import evidence_of
from pytest_canarygate.agtmux.gate_api import gate
from pytest_canarygate.agtmux.gate_api import max_lag
from pytest_canarygate.agtmux.gate_api import restore_dry_run_now
from pytest_canarygate.agtmux.gate_api import restore_evidence_in_archive
from pytest_canarygate.agtmux.gate_api import unresolved_escalates_in_window


@gate("cutover.checklist.restore-evidence-retained")
def test_restore_dry_run_evidence_retained(
    canarygate_observed: ObservedView,
    agtmux_settings: AgtmuxSettings,
    canarygate_custody: CustodyView,
) -> None:
    """The restore dry-run passes now, AND the signed bundles of the phases that judged one
    (alpha, canary) hold its passing result."""
    judged = combine(
        "restore dry-run evidence not shown retained",
        {
            "now": attempt(lambda: restore_dry_run_now(canarygate_observed, agtmux_settings)),
            "archive": attempt(lambda: restore_evidence_in_archive(canarygate_custody)),
        },
    )
    conclude(canarygate_observed, "restore evidence", judged)


@gate("cutover.checklist.no-unresolved-escalate")
def test_no_unresolved_escalate_in_the_escalate_window(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    entries = evidence_of(canarygate_observed, "alert_entries", AlertEntry)
    judged = unresolved_escalates_in_window(
        entries.records,
        timedelta(days=agtmux_settings.windows.escalate_days),
        canarygate_observed.now,
        entries,
        max_lag=max_lag(agtmux_settings),
    )
    conclude(canarygate_observed, "escalates", judged)
