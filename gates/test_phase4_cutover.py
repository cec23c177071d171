"""Phase 4, full cutover: no session left on v4, a final snapshot, v4 decommissioned with its
binary archived.

Runbook: "Phase 4: Full Cutover". The final snapshot is the newest snapshot, whatever its trigger,
and it must pass the restore dry-run at the current projection version: what the runbook needs
before decommissioning is a snapshot of the current state that can be restored. A Manual or
Shutdown snapshot taken days earlier would be TooOld and cannot serve (daemon facts 4.4, 4.5).

Step 4 decommissions v4, so a v4 with no socket (or nobody listening on it) is an expected state
here: "decommissioned" is judged as v4 stopped, its binary archived. "Zero v4 sessions" is judged
on a v4 that answers only once it has ticked (before its first tick its answers are empty
whatever it serves); on a stopped v4, as none because it is decommissioned, after the last
archived run of the phase that saw it running found it empty (the statement's ``facts``).
"v5-only for 7 days" needs v4 holding nothing for 7 days while up (managed panes are never
removed, so none now means none since it started), or v4 decommissioned; it never needs v4
running. "v4 binary archived for 30 days": the archived binary is the version of the v4 that
ran, retained 30 days past the decommission.
"""

from __future__ import annotations

from datetime import timedelta

from pytest_canarygate.agtmux.gate_api import AgtmuxSettings
from pytest_canarygate.agtmux.gate_api import CustodyView
from pytest_canarygate.agtmux.gate_api import ObservedView
from pytest_canarygate.agtmux.gate_api import attempt
from pytest_canarygate.agtmux.gate_api import combine
from pytest_canarygate.agtmux.gate_api import conclude
from pytest_canarygate.agtmux.gate_api import gate
from pytest_canarygate.agtmux.gate_api import stable_for
from pytest_canarygate.agtmux.gate_api import v4_binary_retained
from pytest_canarygate.agtmux.gate_api import v4_decommissioned
from pytest_canarygate.agtmux.gate_api import v4_sessions_gone
from pytest_canarygate.agtmux.gate_api import v5_only_for


def _zero_v4_sessions(observed: ObservedView, custody: CustodyView) -> None:
    conclude(observed, "v4 sessions", v4_sessions_gone(observed, custody))


@gate("cutover.migrate.v4-sessions-restarted")
def test_remaining_v4_sessions_migrated(
    canarygate_observed: ObservedView, canarygate_custody: CustodyView
) -> None:
    _zero_v4_sessions(canarygate_observed, canarygate_custody)


@gate("cutover.verify.zero-v4-sessions")
def test_verify_zero_v4_sessions_remaining(
    canarygate_observed: ObservedView, canarygate_custody: CustodyView
) -> None:
    _zero_v4_sessions(canarygate_observed, canarygate_custody)


@gate("cutover.decommission.v4-binary-archived")
def test_v4_decommissioned_and_binary_kept(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    conclude(
        canarygate_observed,
        "v4 decommission",
        v4_decommissioned(canarygate_observed, agtmux_settings),
    )


@gate("cutover.exit.zero-v4-sessions")
def test_zero_active_v4_sessions(
    canarygate_observed: ObservedView, canarygate_custody: CustodyView
) -> None:
    _zero_v4_sessions(canarygate_observed, canarygate_custody)


@gate("cutover.exit.v5-only-stable-7d")
def test_v5_only_operation_stable_for_its_window(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    window = timedelta(days=agtmux_settings.windows.cutover_stable_days)
    judged = combine(
        "v5-only operation not shown stable",
        {
            "v5 stable": stable_for(canarygate_observed, agtmux_settings, window),
            "v4 serving nothing": attempt(lambda: v5_only_for(canarygate_observed, window)),
        },
    )
    conclude(canarygate_observed, "stability", judged)


@gate("cutover.exit.v4-binary-retained")
def test_v4_binary_archived_for_rollback_window(
    canarygate_observed: ObservedView,
    canarygate_custody: CustodyView,
    agtmux_settings: AgtmuxSettings,
) -> None:
    conclude(
        canarygate_observed,
        "v4 archive",
        attempt(
            lambda: v4_binary_retained(canarygate_observed, canarygate_custody, agtmux_settings)
        ),
    )
