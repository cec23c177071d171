"""Canary Gate Checklist: the final sign-off before full cutover (judged at cutover entry).

Runbook: "Canary Gate Checklist". The signed exit criteria of phases 1-3 and the tested rollback
are chain-of-custody items, the on-call briefing a human attestation (pending in the catalog).
Gated here: the restore dry-run evidence is retained, and no Escalate alert stayed unresolved in
the last ``windows.escalate_days``.
"""

from __future__ import annotations

from datetime import timedelta

from pytest_canarygate import ObservedView
from pytest_canarygate import gate
from pytest_canarygate.agtmux.gate_support import conclude
from pytest_canarygate.agtmux.gate_support import evidence_of
from pytest_canarygate.agtmux.gate_support import max_lag
from pytest_canarygate.agtmux.gate_support import restore_dry_run_now
from pytest_canarygate.agtmux.judgement import unresolved_escalates_in_window
from pytest_canarygate.agtmux.providers import AlertEntry
from pytest_canarygate.config import CanarygateConfig


@gate("cutover.checklist.restore-evidence-retained")
def test_restore_dry_run_evidence_retained(
    observed: ObservedView, canarygate_settings: CanarygateConfig
) -> None:
    conclude(observed, "restore evidence", restore_dry_run_now(observed, canarygate_settings))


@gate("cutover.checklist.no-unresolved-escalate")
def test_no_unresolved_escalate_in_7_days(
    observed: ObservedView, canarygate_settings: CanarygateConfig
) -> None:
    entries = evidence_of(observed, "alert_entries", AlertEntry)
    judged = unresolved_escalates_in_window(
        entries.records,
        timedelta(days=canarygate_settings.windows.escalate_days),
        observed.now,
        entries,
        max_lag=max_lag(canarygate_settings),
    )
    conclude(observed, "escalates", judged)
