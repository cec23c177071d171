"""The chain of custody: earlier phases' signed bundles and the humans' signed word.

Runbook: "Pre-Canary Checklist" item 3, Phase 2's exit (users confirm), "When to Rollback"
(user-reported data inconsistency), "Post-Rollback" item 3 and the final "Canary Gate
Checklist". A phase's bundle counts only when it verifies against a trusted key, is live,
complete, promotable and newer than the last rollback (docs/chain-of-custody.md); a sign-off
or report counts only when signed by a signer the config allows for that item.
"""

from __future__ import annotations

from datetime import datetime
from datetime import timedelta

from pytest_canarygate.agtmux.gate_api import AgtmuxSettings
from pytest_canarygate.agtmux.gate_api import CustodyView
from pytest_canarygate.agtmux.gate_api import GateFailed
from pytest_canarygate.agtmux.gate_api import Inconclusive
from pytest_canarygate.agtmux.gate_api import ObservedView
from pytest_canarygate.agtmux.gate_api import RuntimeSelector
from pytest_canarygate.agtmux.gate_api import canary_expansion
from pytest_canarygate.agtmux.gate_api import conclude
from pytest_canarygate.agtmux.gate_api import gate
from pytest_canarygate.agtmux.gate_api import one_of
from pytest_canarygate.agtmux.gate_api import soak_from_archive


def _signed_phase(observed: ObservedView, custody: CustodyView, phase: str) -> None:
    """PASS on the ``phase`` bundle the run relies on; INCONCLUSIVE naming why there is none."""
    observed.note(f"{phase} bundle relied on", custody.link(phase))


@gate("canary.pre.alpha-signed")
def test_phase1_exit_signed(
    canarygate_observed: ObservedView, canarygate_custody: CustodyView
) -> None:
    _signed_phase(canarygate_observed, canarygate_custody, "alpha")


@gate("cutover.checklist.alpha-signed")
def test_checklist_phase1_signed(
    canarygate_observed: ObservedView, canarygate_custody: CustodyView
) -> None:
    _signed_phase(canarygate_observed, canarygate_custody, "alpha")


@gate("cutover.checklist.canary-signed")
def test_checklist_phase2_signed(
    canarygate_observed: ObservedView, canarygate_custody: CustodyView
) -> None:
    _signed_phase(canarygate_observed, canarygate_custody, "canary")


@gate("cutover.checklist.gradual-signed")
def test_checklist_phase3_signed(
    canarygate_observed: ObservedView, canarygate_custody: CustodyView
) -> None:
    _signed_phase(canarygate_observed, canarygate_custody, "gradual")


@gate("canary.pre.rollback-rehearsed")
def test_rollback_procedure_tested_before_canary(
    canarygate_observed: ObservedView, canarygate_custody: CustodyView
) -> None:
    canarygate_observed.note("rollback rehearsal relied on", canarygate_custody.rehearsal())


@gate("cutover.checklist.rollback-rehearsed")
def test_checklist_rollback_procedure_tested(
    canarygate_observed: ObservedView, canarygate_custody: CustodyView
) -> None:
    canarygate_observed.note("rollback rehearsal relied on", canarygate_custody.rehearsal())


@gate("canary.exit.users-confirm")
def test_all_canary_users_confirm(
    canarygate_observed: ObservedView, canarygate_custody: CustodyView
) -> None:
    """One signed confirmation (P2-X3) per canary session the runtime selector names."""
    selector = one_of(canarygate_observed, "runtime_selector", RuntimeSelector)
    sessions = selector.v5_canary_sessions
    if not sessions:
        raise Inconclusive("the runtime selector names no canary session: nobody to confirm")
    # A confirmation of the canary is given during the canary: after the phase started.
    started = canarygate_custody.custody.soak.get("phase_start")
    if not started:
        raise Inconclusive(
            "the canary has not started in the archive (no signed, live canary run whose entry "
            "gates all passed): no confirmation can be of this canary yet"
        )
    since = datetime.fromisoformat(started)
    confirmed = {
        s: [
            c
            for c in canarygate_custody.signoffs("P2-X3", s)
            if datetime.fromisoformat(c["signed_at"]) >= since
        ]
        for s in sessions
    }
    missing = [s for s in sessions if not confirmed[s]]
    if missing:
        refused = canarygate_custody.refused_for("P2-X3")
        early = [
            c["file"]
            for s in missing
            for c in canarygate_custody.signoffs("P2-X3", s)
            if datetime.fromisoformat(c["signed_at"]) < since
        ]
        notes = [f"signed before the canary started at {started}: {', '.join(early)}"] * bool(
            early
        ) + [f"refused: {'; '.join(refused)}"] * bool(refused)
        raise Inconclusive(
            f"{len(missing)} of {len(sessions)} canary session(s) have no signed confirmation "
            f"(P2-X3): {', '.join(missing)} (write one per session with `canarygate signoff "
            "--item P2-X3 --session SESSION --by NAME --key KEY`)"
            + "".join(f"; {note}" for note in notes)
        )
    canarygate_observed.note("confirmations", {s: confirmed[s][-1] for s in sessions})


@gate("cutover.checklist.on-call-briefed")
def test_on_call_briefed(
    canarygate_observed: ObservedView, canarygate_custody: CustodyView
) -> None:
    signoff = canarygate_custody.require_signoff("CG-7")
    canarygate_observed.note("on-call briefed", signoff)


@gate("signal.user-reported-inconsistency")
def test_signal_user_reported_inconsistency(
    canarygate_observed: ObservedView, canarygate_custody: CustodyView
) -> None:
    """Fires on any signed data-inconsistency report no signed resolution closes."""
    open_reports = canarygate_custody.open_reports()
    canarygate_observed.note("open user reports", open_reports)
    if open_reports:
        first = open_reports[0]
        raise GateFailed(
            f"rollback signal: {len(open_reports)} unresolved user report(s) of data "
            f"inconsistency, first by {first['by']} on session {first['session']} at "
            f"{first['signed_at']}: {first['text'][:200]!r} ({first['file']})"
        )


@gate("canary.pre.rca-after-rollback")
def test_no_canary_retry_without_rca(
    canarygate_observed: ObservedView, canarygate_custody: CustodyView
) -> None:
    """After a rollback, a canary needs a signed root cause analysis (PR-3) that names the
    rollback bundle (`canarygate signoff --item PR-3 --refers BUNDLE`)."""
    rollback = canarygate_custody.custody.rollback
    if rollback is None:
        canarygate_observed.note("rollback", "no rollback bundle in this migration's archive")
        return
    citing = [s for s in canarygate_custody.signoffs("PR-3") if rollback["digest"] in s["refers"]]
    if not citing:
        raise GateFailed(
            f"the migration was rolled back ({rollback['bundle']}) and no signed root cause "
            "analysis (PR-3) names that bundle: do not retry the canary without one "
            f"(`canarygate signoff --item PR-3 --refers <rollback bundle> --by NAME --key KEY`)"
        )
    canarygate_observed.note("root cause analysis", citing[-1])


# --- time in phase, measured from the archive (the daemon-side gates judge the same items
# from the daemons' own history; both must pass)


def _soak(observed: ObservedView, custody: CustodyView, window: timedelta, what: str) -> None:
    conclude(observed, what, soak_from_archive(custody, window, observed.now, what=what))


@gate("canary.duration.archive-48h")
def test_canary_soaked_its_window_in_the_archive(
    canarygate_observed: ObservedView,
    canarygate_custody: CustodyView,
    agtmux_settings: AgtmuxSettings,
) -> None:
    window = timedelta(hours=agtmux_settings.windows.canary_duration_h)
    _soak(canarygate_observed, canarygate_custody, window, "canary duration")


@gate("canary.exit.archive-stable-48h")
def test_canary_stable_its_window_in_the_archive(
    canarygate_observed: ObservedView,
    canarygate_custody: CustodyView,
    agtmux_settings: AgtmuxSettings,
) -> None:
    window = timedelta(hours=agtmux_settings.windows.canary_duration_h)
    _soak(canarygate_observed, canarygate_custody, window, "canary stability")


@gate("gradual.exit.archive-7d")
def test_gradual_soaked_its_window_in_the_archive(
    canarygate_observed: ObservedView,
    canarygate_custody: CustodyView,
    agtmux_settings: AgtmuxSettings,
) -> None:
    window = timedelta(days=agtmux_settings.windows.gradual_days)
    _soak(canarygate_observed, canarygate_custody, window, "new sessions on v5")


@gate("cutover.exit.archive-7d")
def test_v5_only_soaked_its_window_in_the_archive(
    canarygate_observed: ObservedView,
    canarygate_custody: CustodyView,
    agtmux_settings: AgtmuxSettings,
) -> None:
    window = timedelta(days=agtmux_settings.windows.cutover_stable_days)
    _soak(canarygate_observed, canarygate_custody, window, "v5-only operation")


@gate("canary.expand.pace")
def test_canary_expanded_2_3_sessions_per_day_with_monitoring(
    canarygate_observed: ObservedView, canarygate_custody: CustodyView
) -> None:
    selector = one_of(canarygate_observed, "runtime_selector", RuntimeSelector)
    judged = canary_expansion(
        canarygate_custody, selector.v5_canary_sessions, canarygate_observed.now
    )
    conclude(canarygate_observed, "canary expansion", judged)
