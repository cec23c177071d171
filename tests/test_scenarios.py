"""The gates end to end against the simulator: `pytest --phase=X --canarygate-sim=SCENARIO`.

Each failure scenario makes exactly the gates that judge its fault end in the expected verdict,
with the reason in the message, while every other gate of the phase passes; the healthy fleet
passes every gate of every phase. Live-mode runs point the config's [evidence] at missing,
unreachable or malformed endpoints, and at a stock v5 serving only today's eleven methods.

The simulator's clock is pinned (``CANARYGATE_SIM_ANCHOR_MS``): every time a scenario places in
the past is counted back from that value, so a message that shows how long ago something was is
computed from it and from the moment the run judged at, which the run records; none depends on
how long the run took to start.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest
from gate_repo import NO_ARCHIVE_INCONCLUSIVE
from gate_repo import OPS_METHOD
from gate_repo import make_gate_repo
from gate_repo import observation
from gate_repo import only_run

from pytest_canarygate.agtmux.judgement import format_duration
from pytest_canarygate.agtmux.judgement import format_time
from pytest_canarygate.agtmux.pack import ACCESSORS
from pytest_canarygate.agtmux.pack import RPC_EVIDENCE_KINDS
from pytest_canarygate.agtmux.runbook import PHASES
from pytest_canarygate.agtmux.sim import SimFleet
from pytest_canarygate.agtmux.sim import start_fleet
from pytest_canarygate.agtmux.sim.clock import ANCHOR_ENV
from pytest_canarygate.agtmux.sim.clock import NS_PER_MS
from pytest_canarygate.catalog import load_catalog

ROOT = Path(__file__).resolve().parents[1]
CATALOG = load_catalog(ROOT / "gates" / "catalog.toml")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class RunClock:
    """The two moments a simulated run's messages are made of: the simulator's pinned anchor,
    which every time a scenario places in the past is counted back from, and the moment the
    gates judged at (when the observation started, as the run recorded it)."""

    anchor_ms: int
    now_ms: int

    @property
    def now(self) -> datetime:
        return EPOCH + timedelta(milliseconds=self.now_ms)

    def at(self, ago: timedelta) -> datetime:
        """When what the scenario places ``ago`` before its anchor happened."""
        return EPOCH + timedelta(milliseconds=self.anchor_ms) - ago

    def since(self, ago: timedelta) -> timedelta:
        """How long before the judging moment that was."""
        return self.now - self.at(ago)


Fragments = str | tuple[str, ...]
#: gate id -> (verdict, a fragment of its message's first line, or alternatives of which one
#: is, or how to compute those from the run's clock)
Expected = dict[str, tuple[str, Fragments | Callable[[RunClock], Fragments]]]

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
MAX_SNAPSHOT_AGE_MS = 600_000  # the default threshold


def _ms(span: timedelta) -> int:
    return span // timedelta(milliseconds=1)


def snapshot_too_old(ago: timedelta) -> Callable[[RunClock], str]:
    """The restore dry-run on a newest snapshot taken ``ago`` before the anchor."""

    def fragment(clock: RunClock) -> str:
        age = clock.since(ago)
        return (
            f"TooOld {{ age_ms: {_ms(age)}, max_age_ms: {MAX_SNAPSHOT_AGE_MS} }} "
            f"(taken {format_duration(age)} ago)"
        )

    return fragment


def log_ends(ago: timedelta) -> Callable[[RunClock], tuple[str, ...]]:
    """The daemon log's last line was written ``ago`` before the anchor; its timestamp carries
    made-up microseconds (under a millisecond), so the span shown may be a unit shorter."""

    def fragment(clock: RunClock) -> tuple[str, ...]:
        spans = (clock.since(ago), clock.since(ago) - timedelta(milliseconds=1))
        return tuple(
            dict.fromkeys(
                f"it ends {format_duration(span)} before now ({format_time(clock.now)})"
                for span in spans
            )
        )

    return fragment


def no_recovery(ago: timedelta, hold: timedelta) -> Callable[[RunClock], str]:
    """A hold-down ``ago`` before the anchor, lasting ``hold``, that nothing recovered from."""

    def fragment(clock: RunClock) -> str:
        ended = ago - hold
        return (
            f"ended {format_time(clock.at(ended))} and no recovery followed in "
            f"{format_duration(clock.since(ended))}"
        )

    return fragment


def phase_running(phase: str, ago: timedelta) -> Callable[[RunClock], str]:
    """The runtime selector changed to ``phase`` ``ago`` before the anchor."""

    def fragment(clock: RunClock) -> str:
        return (
            f"{phase} running {format_duration(clock.since(ago))} since "
            f"{format_time(clock.at(ago))}"
        )

    return fragment


def up_only(ago: timedelta) -> Callable[[RunClock], str]:
    """A daemon that started ``ago`` before the anchor."""

    def fragment(clock: RunClock) -> str:
        return (
            f"but it has been up only {format_duration(clock.since(ago))} "
            f"(since {format_time(clock.at(ago))})"
        )

    return fragment


DRY_RUN_TOO_OLD = ("FAIL", snapshot_too_old(20 * MINUTE))
GHOST_DRIFT = "pane outside any tmux session %8: activity_state v4='WaitingInput' v5='Running'"
V4_NOT_READY = ("INCONCLUSIVE", "parity not judged: v4 INCONCLUSIVE: v4 not ready: latency_status")
SNAPSHOT_BEHIND = "is 15 versions behind v5's current projection version"
STARTUP_DAEMON_EARLY = "out of order (Sources -> Daemon)"
STARTUP_NOT_SHOWN = "no startup (Sources stage_started) in the v5 supervisor events since"
V4_LEFT = ("FAIL", "v4 still serves")
V4_ANSWERS = ("FAIL", "v4 is not decommissioned: it still answers (unix://")
V4_NOT_DECOMMISSIONED = ("INCONCLUSIVE", "v4 is not decommissioned yet, so 30d past its")

SCENARIOS: dict[tuple[str, str], Expected] = {
    ("holddown-24h", "alpha"): {
        "alpha.supervisor.ready": ("FAIL", "supervisor state HoldDown until"),
        "alpha.monitor.no-hold-down": ("FAIL", "1 supervisor HoldDown events in the last 24h"),
        "alpha.exit.zero-hold-downs": ("FAIL", "1 supervisor HoldDown events in the last 24h"),
    },
    ("holddown-24h", "canary"): {
        "canary.exit.stable-48h": ("FAIL", "1 supervisor HoldDown events in the last 48h"),
        "signal.hold-down-not-recovered": ("FAIL", no_recovery(2 * HOUR, 5 * MINUTE)),
        # nothing was logged since the hold-down 2h ago: the log does not reach now, so it
        # cannot show the latency over the window (a quiet log proves less than a ledger)
        "canary.monitor.latency": ("INCONCLUSIVE", log_ends(2 * HOUR)),
        "signal.latency-breaches": ("INCONCLUSIVE", log_ends(2 * HOUR)),
        # the same log cannot show that no source went stale in the last 2h either
        "canary.monitor.source-health": ("INCONCLUSIVE", log_ends(2 * HOUR)),
    },
    # a supervisor Escalate is no latency alert: the latency monitor leaves it to its own gates
    ("escalate-alert", "canary"): {
        "canary.exit.stable-48h": ("FAIL", "alert-4 Escalate from supervisor"),
        "canary.exit.no-degraded-alerts": ("FAIL", "at or above Degraded in the last 48h: alert-4"),
        "signal.escalate-persisting": ("FAIL", "1 Escalate alerts persisted longer than 5m"),
    },
    ("escalate-alert", "cutover"): {
        "cutover.exit.v5-only-stable-7d": ("FAIL", "alert-4 Escalate from supervisor"),
        "signal.escalate-persisting": ("FAIL", "1 Escalate alerts persisted longer than 5m"),
        "cutover.checklist.no-unresolved-escalate": ("FAIL", "1 Escalate alerts left unresolved"),
    },
    # resolved since, but left unresolved for 3 days inside the checklist's 7-day window
    ("escalate-resolved-in-window", "cutover"): {
        "cutover.exit.v5-only-stable-7d": ("FAIL", "alert-4 Escalate from supervisor"),
        "cutover.checklist.no-unresolved-escalate": (
            "FAIL",
            "1 Escalate alerts left unresolved in the last 7d: alert-4 Escalate from supervisor",
        ),
    },
    # resolved before the checklist's 7-day window began: it does not count
    ("escalate-resolved-before-window", "cutover"): {},
    # a source_health alert is no latency alert (the canary exit's "no alert >= Degraded" has it)
    ("degraded-alert", "canary"): {
        "canary.exit.stable-48h": ("FAIL", "alert-4 Degraded from source_health"),
        "canary.exit.no-degraded-alerts": ("FAIL", "(resolved"),
    },
    ("latency-alert", "canary"): {
        "canary.monitor.latency": (
            "FAIL",
            "latency alerts FAIL: 1 latency_window alerts at or above Degraded in the last 48h",
        ),
        "canary.exit.stable-48h": ("FAIL", "alert-4 Degraded from latency_window"),
        "canary.exit.no-degraded-alerts": ("FAIL", "alert-4 Degraded from latency_window"),
    },
    # degraded now for 10 ticks (a fraction of a second in the log): a breach under way, not
    # yet one over more than 3 SLO windows
    ("latency-degraded", "canary"): {
        "canary.monitor.latency": ("FAIL", "latency SLO degraded: rolling p95 3224 ms > 3000 ms"),
        "signal.latency-breaches": ("INCONCLUSIVE", "p95 breach in progress: status degraded"),
    },
    # 35 minutes unbroken: four 10-minute SLO windows, the signal fires
    ("latency-sustained", "canary"): {
        "canary.monitor.latency": ("FAIL", "daemon log p95 breaches FAIL: 2101 SLO log lines"),
        "signal.latency-breaches": (
            "FAIL",
            "p95 breach sustained over 4 consecutive 10m SLO windows (more than 3)",
        ),
    },
    # stale now: the registry says so, and the daemon logged the transition a minute ago
    ("stale-source", "canary"): {
        "canary.monitor.source-health": ("FAIL", "registered source ext-poller is stale"),
    },
    # active now, stale for a while 5h ago: only the daemon log's transition shows it
    ("source-flapped", "canary"): {
        "canary.monitor.source-health": ("FAIL", "ext-claude-hooks at "),
    },
    ("source-flapped", "gradual"): {
        "canary.monitor.source-health": ("FAIL", "went stale in the last 7d"),
    },
    ("cas-conflict", "canary"): {
        "canary.monitor.cas-conflicts": ("FAIL", "2 CAS conflicts since"),
    },
    ("invalid-cursor", "canary"): {
        "canary.monitor.cursor": ("FAIL", "invalid_cursor streak reached 3"),
        # the counters cannot say when; the daemon log places it an hour ago, on the canary
        "signal.cursor-full-resync": ("FAIL", "1 cursor FullResyncs on the canary in the last 24h"),
    },
    # 20 days ago is outside the look-back: the signal advises nothing (the gradual phase has no
    # cursor monitor, whose counters count it too)
    ("fullresync-old", "gradual"): {},
    # after the rollback v5 serves no session: its FullResync an hour ago is on no canary
    ("fullresync-non-canary", "rollback"): {},
    ("snapshot-version-ahead", "alpha"): {
        "prereq.restore-dry-run": ("FAIL", "VersionAhead { snapshot_version: "),
        "alpha.exit.restore-dry-run": ("FAIL", "VersionAhead { snapshot_version: "),
    },
    ("snapshot-too-old", "alpha"): {
        "prereq.snapshot-infrastructure": ("FAIL", "older than two intervals (10m)"),
        "prereq.restore-dry-run": DRY_RUN_TOO_OLD,
        "alpha.exit.restore-dry-run": DRY_RUN_TOO_OLD,
    },
    # an old snapshot at the current version is still the current state; restoring it is not Ok
    ("snapshot-too-old", "canary"): {
        "canary.pre.restore-dry-run": DRY_RUN_TOO_OLD,
    },
    ("snapshot-version-ahead", "canary"): {
        "canary.pre.snapshot-recorded": ("FAIL", "VersionAhead { snapshot_version: "),
        "canary.pre.restore-dry-run": ("FAIL", "VersionAhead { snapshot_version: "),
    },
    # fresh enough for a restore, but the state changed 15 times since
    ("snapshot-behind", "canary"): {
        "canary.pre.snapshot-recorded": ("FAIL", SNAPSHOT_BEHIND),
    },
    ("snapshot-behind", "rollback"): {
        "rollback.post.v5-snapshot": ("FAIL", SNAPSHOT_BEHIND),
    },
    # the rollback's v5 snapshot must come after routing went back to v4
    ("snapshot-before-switch", "rollback"): {
        "rollback.post.v5-snapshot": ("FAIL", "no snapshot taken since the runtime selector"),
    },
    ("selector-wrong", "canary"): {
        "canary.selector.canary-sessions": ("FAIL", "default_daemon must be 'v4'"),
        "canary.duration.active-48h": ("INCONCLUSIVE", "no active usage"),
        "canary.expand.sessions-managed": ("FAIL", "the selector names no canary session"),
    },
    ("selector-wrong", "rollback"): {
        "rollback.selector.back-to-v4": ("FAIL", "v5_enabled must be false"),
    },
    # after the rollback: every session v5 served on v4, its panes managed, as v5 served them
    ("rollback-session-missing", "rollback"): {
        "rollback.sessions.served-by-v4": ("FAIL", "session session-beta is not on v4"),
        "rollback.v4.list-panes": ("FAIL", "pane %4 (session-beta): not in v4 list_panes"),
    },
    ("rollback-v4-unmanaged", "rollback"): {
        "rollback.sessions.served-by-v4": (
            "FAIL",
            "session session-alpha: v4 does not manage panes %1 that v5 manages",
        ),
        "rollback.v4.list-panes": ("FAIL", "pane %1 (session-alpha): presence v5='managed'"),
    },
    ("v4-restarted", "rollback"): {
        "rollback.sessions.served-by-v4": ("INCONCLUSIVE", "the sessions on v4 not judged: v4"),
        "rollback.v4.list-panes": ("INCONCLUSIVE", "v4 list_panes not judged: v4"),
    },
    ("v4-sessions-remaining", "cutover"): {
        "cutover.migrate.v4-sessions-restarted": V4_LEFT,
        "cutover.verify.zero-v4-sessions": V4_LEFT,
        "cutover.exit.zero-v4-sessions": V4_LEFT,
        "cutover.exit.v5-only-stable-7d": V4_LEFT,
        "cutover.decommission.v4-binary-archived": V4_ANSWERS,
        "cutover.exit.v4-binary-retained": V4_NOT_DECOMMISSIONED,
    },
    # "decommissioned", but v4 still answers on its socket: drained, so no session is left
    ("v4-still-answering", "cutover"): {
        "cutover.decommission.v4-binary-archived": V4_ANSWERS,
        "cutover.exit.v4-binary-retained": V4_NOT_DECOMMISSIONED,
        "cutover.migrate.v4-sessions-restarted": ("PASS", ""),
        "cutover.verify.zero-v4-sessions": ("PASS", ""),
        "cutover.exit.zero-v4-sessions": ("PASS", ""),
    },
    ("build-failing", "alpha"): {
        "prereq.build-passes": ("FAIL", "697 passed, 3 failed"),
    },
    # v5 must report the release (here the build evidence's version), newer than v4's
    ("v5-downgraded", "alpha"): {
        "prereq.v5-deployed": ("FAIL", "reports 0.0.3, older than v4's 0.0.4: a downgrade"),
    },
    ("v5-unexpected-version", "alpha"): {
        "prereq.v5-deployed": ("FAIL", "reports 0.1.1, not the release 0.1.0"),
        "prereq.build-passes": ("FAIL", "the build evidence is for 0.1.0, v5 daemon.info reports"),
    },
    # the build evidence must be a full `just verify` of the deployed v5
    ("build-other-version", "alpha"): {
        "prereq.build-passes": ("FAIL", "the build evidence is for 0.1.0-rc.1, v5 daemon.info"),
        "prereq.v5-deployed": ("FAIL", "reports 0.1.0, not the release 0.1.0-rc.1"),
    },
    ("build-no-clippy", "alpha"): {
        "prereq.build-passes": ("FAIL", "the build evidence has no clippy result"),
    },
    ("build-five-crates", "alpha"): {
        "prereq.build-passes": ("FAIL", "5 crates with a passing test (agtmux-core-v5, "),
    },
    ("build-before-deploy", "alpha"): {
        "prereq.build-passes": ("FAIL", "24h before v5 was deployed (started "),
    },
    # the startup order is what the supervisor's stage events show, not what it declares
    ("startup-out-of-order", "alpha"): {
        "prereq.startup-order": ("FAIL", STARTUP_DAEMON_EARLY),
        "contract.startup-order": ("FAIL", STARTUP_DAEMON_EARLY),
        "alpha.supervisor.ready": ("FAIL", STARTUP_DAEMON_EARLY),
    },
    ("startup-before-ready", "alpha"): {
        "prereq.startup-order": ("FAIL", "before Sources was ready"),
        "contract.startup-order": ("FAIL", "before Sources was ready"),
        "alpha.supervisor.ready": ("FAIL", "before Sources was ready"),
    },
    ("startup-not-retained", "alpha"): {
        "prereq.startup-order": ("INCONCLUSIVE", STARTUP_NOT_SHOWN),
        "contract.startup-order": ("INCONCLUSIVE", STARTUP_NOT_SHOWN),
        "alpha.supervisor.ready": ("INCONCLUSIVE", STARTUP_NOT_SHOWN),
    },
    # jitter, failure budget and hold-down from what the supervisor did, not what it declares
    ("restart-delays-unjittered", "alpha"): {
        "contract.jitter": ("FAIL", "exactly on the backoff schedule: the runtime applies no"),
    },
    ("restart-delays-wide", "alpha"): {
        "contract.jitter": ("FAIL", "10 of 13 v5 supervisor restart delays since"),
    },
    ("holddown-early", "alpha"): {
        "contract.failure-budget": ("FAIL", "entered at the 3rd failure within 10m"),
    },
    ("holddown-short", "alpha"): {
        "contract.hold-down": ("FAIL", "lasted 60000 ms (until_ms - at_ms), contract 300000 ms"),
    },
    # managed panes never go away: a canary whose agents went idle days ago shows no use
    # (every idle canary session is named)
    ("canary-idle", "canary"): {
        "canary.duration.active-48h": ("INCONCLUSIVE", "2 of 2 canary sessions idle on v5"),
    },
    # one canary session in use does not show the other one used
    ("one-canary-idle", "canary"): {
        "canary.duration.active-48h": (
            "INCONCLUSIVE",
            "(the last 48h): session-beta (2 managed panes, last at ",
        ),
    },
    # a phase counts from the selector's last change, not from v5's start
    ("selector-just-changed", "canary"): {
        "canary.duration.active-48h": ("INCONCLUSIVE", phase_running("canary", HOUR)),
        "canary.exit.stable-48h": ("INCONCLUSIVE", phase_running("canary", HOUR)),
    },
    ("selector-just-changed", "gradual"): {
        "gradual.exit.v5-default-7d": ("INCONCLUSIVE", phase_running("gradual", HOUR)),
    },
    # the selector routes a session started after its switch to v5 to v4
    ("session-new-on-v4", "gradual"): {
        "gradual.migration-rate": (
            "FAIL",
            "1 sessions started after the switch to v5 at",
        ),
        "gradual.exit.v5-default-7d": ("FAIL", "1 of the 1 sessions started since the switch"),
    },
    # a session v4 held at the switch moved to v5 before any restart
    ("session-moved-off-v4", "gradual"): {
        "gradual.v4.serves-its-sessions": (
            "FAIL",
            "1 sessions started before the switch to v5 at",
        ),
    },
    # restarts every 6 days: 2 in the last week vs 1 before, but 2 in the phase vs 2 before it
    ("restarts-steady", "gradual"): {},
    ("restarts-doubled", "gradual"): {
        "gradual.exit.no-restart-regression": (
            "FAIL",
            "supervisor restarts regressed: 9 in the gradual phase",
        ),
    },
    ("restarts-history-short", "gradual"): {
        "gradual.exit.no-restart-regression": ("INCONCLUSIVE", "restart rate not comparable"),
    },
    # healthy now, degraded an hour ago: only the daemon log still shows it
    ("latency-flapped", "canary"): {
        # the two WARN breach lines count as well as the ten SLO DEGRADED ones
        "canary.monitor.latency": ("FAIL", "daemon log p95 breaches FAIL: 12 SLO log lines"),
        # a breach of 220 ms an hour ago spans one SLO window: no rollback signal
    },
    # two WARN breach lines and no SLO DEGRADED: the p95 left the threshold in the window
    ("latency-breach-lines", "canary"): {
        "canary.monitor.latency": ("FAIL", "daemon log p95 breaches FAIL: 2 SLO log lines"),
    },
    # a v4 that restarted and never ticked shows nothing, which proves nothing
    ("v4-restarted", "gradual"): {
        "gradual.v4.serves-its-sessions": ("INCONCLUSIVE", "v4 not ready"),
        "gradual.v4.rollback-target": ("INCONCLUSIVE", "v4 not ready"),
    },
    ("v4-restarted", "cutover"): {
        "cutover.migrate.v4-sessions-restarted": ("INCONCLUSIVE", "v4 not ready"),
        "cutover.verify.zero-v4-sessions": ("INCONCLUSIVE", "v4 not ready"),
        "cutover.exit.zero-v4-sessions": ("INCONCLUSIVE", "v4 not ready"),
        "cutover.exit.v5-only-stable-7d": ("INCONCLUSIVE", up_only(2 * MINUTE)),
        "cutover.decommission.v4-binary-archived": V4_ANSWERS,
        "cutover.exit.v4-binary-retained": V4_NOT_DECOMMISSIONED,
    },
    # the change log still binds a pane whose deterministic title decayed
    ("title-decayed", "alpha"): {
        "alpha.parity.sessions": ("FAIL", "activity_state v4='Running' v5='Error'"),
        "alpha.exit.projection-matches": ("FAIL", "activity_state v4='Running' v5='Error'"),
    },
    # a pane in no tmux session is compared too; history-only sessions are not
    ("parity-ghost-drift", "alpha"): {
        "alpha.parity.panes": ("FAIL", GHOST_DRIFT),
        "alpha.exit.projection-matches": ("FAIL", GHOST_DRIFT),
    },
    # a difference in one of the two readings is a flap, not shown either way
    ("parity-flapping", "alpha"): {
        "alpha.parity.panes": (
            "INCONCLUSIVE",
            "in session-beta differs in only some of 2 readings",
        ),
        "alpha.exit.projection-matches": ("INCONCLUSIVE", "differs in only some of 2 readings"),
    },
    # parity is not judged against a daemon that has not ticked yet
    ("v4-restarted", "alpha"): {
        "alpha.parity.panes": V4_NOT_READY,
        "alpha.parity.sessions": V4_NOT_READY,
        "alpha.parity.signature": V4_NOT_READY,
        "alpha.exit.projection-matches": V4_NOT_READY,
    },
    # nothing to compare, nothing advancing
    ("no-agents", "alpha"): {
        "alpha.parity.sessions": ("INCONCLUSIVE", "0 active agent sessions on v4 and 0 on v5"),
        "alpha.projection.version-advancing": ("INCONCLUSIVE", "flat at 0 and no change in"),
    },
}


STOCK_KINDS = {"snapshots", "supervisor_status", "supervisor_events", "alert_entries"}


def accessors_of(gate_id: str) -> set[str]:
    return {n.method for n in CATALOG.gates[gate_id].needs if n.daemon == "evidence"}


def stock_expected(phase: str) -> Expected:
    """A stock v5 whose deployment publishes only the build and the v4 archive as files: every
    gate reading ops evidence is UNOBSERVABLE and names a method it misses; a gate that judges
    a current reading against the daemon log (published by nobody) shows no history behind it:
    INCONCLUSIVE."""
    expected: Expected = {}
    for spec in CATALOG.gates_for(phase):
        missing = [OPS_METHOD[a] for a in accessors_of(spec.id) if a in OPS_METHOD]
        if missing:
            named = tuple(f"method {m} not served by unix://" for m in missing)
            expected[spec.id] = ("UNOBSERVABLE", named)
        elif accessors_of(spec.id) == {"log_events"}:
            expected[spec.id] = ("INCONCLUSIVE", "no provider configured for 'daemon_log'")
    return expected


def supervisor_log_only() -> Expected:
    """holddown-log-only: the supervisor ops evidence is not served; the gates that need its
    status say so, the canary's stability finds the hold-down in the log, and the rollback
    signal sees it recovered in the log, with codex_appserver healthy now."""
    expected: Expected = {
        spec.id: ("UNOBSERVABLE", "method ops.supervisor_status not served by unix://")
        for spec in CATALOG.gates_for("canary")
        if "supervisor_status" in accessors_of(spec.id)
        and spec.id != "signal.hold-down-not-recovered"
    }
    expected["canary.exit.stable-48h"] = ("FAIL", "1 supervisor HoldDown events in the last 48h")
    # the startup order is judged from the supervisor's events alone
    expected["contract.startup-order"] = (
        "UNOBSERVABLE",
        "method ops.supervisor_events not served by unix://",
    )
    return expected


SCENARIOS[("holddown-log-only", "canary")] = supervisor_log_only()
SCENARIOS[("stock-daemon", "alpha")] = stock_expected("alpha")
SCENARIOS[("stock-daemon", "canary")] = stock_expected("canary")
#: A few runs under xdist too: the verdicts must not depend on it.
XDIST = {("holddown-24h", "canary"), ("stock-daemon", "alpha"), ("invalid-cursor", "canary")}


def gates_of(run: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """gate id -> (verdict, message); a per-session gate by its worst instance."""
    got: dict[str, tuple[str, str]] = {}
    for g in run["gates"]:
        if g["gate"] not in got or got[g["gate"]][0] == "PASS":
            got[g["gate"]] = (g["verdict"], g["message"])
    return got


def assert_exactly(run: dict[str, Any], phase: str, expected: Expected, clock: RunClock) -> None:
    """Every gate of the phase ran; those expected ended as expected with the fragment (computed
    from the run's clock where it shows one) in the message's first line, and every other one
    passed."""
    got = gates_of(run)
    assert set(got) == {g.id for g in CATALOG.gates_for(phase)}
    no_archive = {g: ("INCONCLUSIVE", "") for g in NO_ARCHIVE_INCONCLUSIVE if g in got}
    expected = {**no_archive, **expected}  # an entry may say a no-archive gate PASSes here
    not_passed = {gate for gate, (verdict, _) in got.items() if verdict != "PASS"}
    failing = {gate for gate, (verdict, _) in expected.items() if verdict != "PASS"}
    assert not_passed == failing, {g: got[g] for g in not_passed ^ failing}
    for gate, (verdict, fragment) in expected.items():
        got_verdict, message = got[gate]
        assert got_verdict == verdict, (gate, message)
        shown = fragment(clock) if callable(fragment) else fragment
        fragments = (shown,) if isinstance(shown, str) else shown
        first = message.splitlines()[0] if message else ""  # a PASS may say nothing
        assert any(f in first for f in fragments), (gate, fragments, message)


@pytest.fixture
def anchor_ms(monkeypatch: pytest.MonkeyPatch) -> int:
    """Pin the simulator's clock for every fleet the test starts (the runs it starts too)."""
    pinned = time.time_ns() // NS_PER_MS
    monkeypatch.setenv(ANCHOR_ENV, str(pinned))
    return pinned


def run_clock(run_dir: Path, anchor_ms: int) -> RunClock:
    """The pinned anchor and the moment the run's gates judged at (its observation's start)."""
    started = datetime.fromisoformat(observation(run_dir)["started_at"].replace("Z", "+00:00"))
    clock = RunClock(anchor_ms, (started - EPOCH) // timedelta(milliseconds=1))
    assert clock.at(timedelta(0)) <= clock.now  # the fleet started before the run observed it
    return clock


@pytest.mark.parametrize(
    ("scenario", "phase"),
    sorted(SCENARIOS),
    ids=[f"{s}-{p}" for s, p in sorted(SCENARIOS)],
)
def test_scenario_fails_exactly_its_gates(
    pytester: pytest.Pytester, anchor_ms: int, scenario: str, phase: str
) -> None:
    make_gate_repo(pytester)
    dist = ["-n", "2"] if (scenario, phase) in XDIST else []
    result = pytester.runpytest_subprocess(
        f"--phase={phase}", f"--canarygate-sim={scenario}", *dist
    )
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    run_dir, run = only_run(pytester.path)
    assert_exactly(run, phase, SCENARIOS[(scenario, phase)], run_clock(run_dir, anchor_ms))
    assert run["verdict"] != "pass"


@pytest.mark.usefixtures("anchor_ms")
@pytest.mark.parametrize("phase", PHASES)
def test_healthy_passes_every_gate_of_every_phase(pytester: pytest.Pytester, phase: str) -> None:
    make_gate_repo(pytester)
    dist = ["-n", "2"] if phase in ("canary", "cutover") else []
    result = pytester.runpytest_subprocess(f"--phase={phase}", "--canarygate-sim=healthy", *dist)
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    _, run = only_run(pytester.path)
    assert {g["gate"] for g in run["gates"]} == {g.id for g in CATALOG.gates_for(phase)}
    # every gate passes but those that need an archive of signed bundles, which a simulated
    # run never has: they say what is missing
    for g in run["gates"]:
        archive = g["gate"] in NO_ARCHIVE_INCONCLUSIVE
        assert g["verdict"] == ("INCONCLUSIVE" if archive else "PASS"), g
    needs_archive = any(g["gate"] in NO_ARCHIVE_INCONCLUSIVE for g in run["gates"])
    expected = pytest.ExitCode.TESTS_FAILED if needs_archive else pytest.ExitCode.OK
    assert result.ret == expected, result.stdout.str()[-3000:]


# --- live mode: the config points the evidence at broken endpoints ----------------------------

MALFORMED: dict[str, str | dict[str, str]] = {
    "snapshots": {"snap-1.json": '{"snapshot_id": "snap-1", "trigger": "Hourly"}'},
    "supervisor": {"status.json": '{"state": "Sleeping"}', "events.jsonl": "[]\n"},
    "alerts": '{"alert_id": "alert-1", "severity": "Critical"}\n',
    "cursor": '{"fetched": "lots"}',
    "binding": "[",
    "selector": "[runtime]\ndefault_daemon = 'v6'\nv5_enabled = true\n",
    "daemon_log": "no timestamp here\n",
    "build": "<testsuites><testcase",
    "archive": '{"binary": "v4", "sha256": "not-hex", "archived_at_ms": 1, "retain_until_ms": 2}',
}


def broken_evidence(mode: str, folder: Path, fleet: SimFleet) -> dict[str, str]:
    """An [evidence] URI per kind that is missing, unreachable or malformed."""
    uris = {}
    for kind in MALFORMED:
        target = folder / kind
        if mode == "missing":
            uris[kind] = (folder / "absent" / kind).as_uri()
        elif mode == "unreachable" and kind in RPC_EVIDENCE_KINDS:
            uris[kind] = f"unix://{folder}/dead.sock"  # a socket nobody serves
        elif mode == "unreachable":
            target.mkdir()  # a directory where the file should be
            uris[kind] = target.as_uri()
        else:
            content = MALFORMED[kind]
            if isinstance(content, dict):
                target.mkdir()
                for name, text in content.items():
                    (target / name).write_text(text)
            else:
                target.write_text(content)
            uris[kind] = target.as_uri()
    return uris


def live_config(fleet: SimFleet, evidence: dict[str, str] | None) -> str:
    lines = [
        '[migration]\nid = "scenarios"',
        f'[daemons.v4]\nendpoint = "{fleet.endpoints["v4"]}"',
        f'[daemons.v5]\nendpoint = "{fleet.endpoints["v5"]}"',
        "[timeouts]\nconnect_s = 1.0\nread_s = 2.0\n[observation]\nversion_interval_s = 0.05",
    ]
    if evidence:
        lines.append("[evidence]\n" + "\n".join(f'{k} = "{v}"' for k, v in evidence.items()))
    return "\n".join(lines) + "\n"


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A short private folder (AF_UNIX paths are short) that nobody else writes."""
    folder = Path(tempfile.mkdtemp(prefix="cg-ev-"))
    yield folder
    for path in sorted(folder.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    folder.rmdir()


@pytest.mark.parametrize(
    ("mode", "phase"),
    [("missing", "canary"), ("unreachable", "alpha"), ("malformed", "cutover")],
)
def test_broken_evidence_endpoints_make_their_gates_unobservable(
    pytester: pytest.Pytester, scratch: Path, mode: str, phase: str
) -> None:
    with start_fleet("healthy", phase=phase) as fleet:
        evidence = broken_evidence(mode, scratch, fleet)
        make_gate_repo(pytester, config=live_config(fleet, evidence))
        result = pytester.runpytest_subprocess(f"--phase={phase}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    _, run = only_run(pytester.path)
    got = gates_of(run)
    for spec in CATALOG.gates_for(phase):
        verdict, message = got[spec.id]
        needed = accessors_of(spec.id)
        if not needed:
            expected = "INCONCLUSIVE" if spec.id in NO_ARCHIVE_INCONCLUSIVE else "PASS"
            assert verdict == expected, (spec.id, message)
            continue
        # a configured evidence file that is not there is broken, never merely absent
        assert verdict == "UNOBSERVABLE", (spec.id, message)
        for accessor in needed:  # every broken endpoint the gate needed is named
            assert evidence[ACCESSORS[accessor][0]] in message, (spec.id, accessor, message)


def test_stock_v5_without_providers_is_unobservable_never_pass(pytester: pytest.Pytester) -> None:
    """Only today's eleven methods on the v5 socket and no file or HTTP provider configured:
    the snapshot, supervisor and ledger gates say which method is missing."""
    with start_fleet("stock-daemon", phase="cutover") as fleet:
        make_gate_repo(pytester, config=live_config(fleet, None))
        result = pytester.runpytest_subprocess("--phase=cutover", "-n", "2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    _, run = only_run(pytester.path)
    got = gates_of(run)
    judged = 0
    for spec in CATALOG.gates_for("cutover"):
        needed = accessors_of(spec.id) & STOCK_KINDS
        if not needed:
            continue
        verdict, message = got[spec.id]
        assert verdict == "UNOBSERVABLE", (spec.id, message)
        first = message.splitlines()[0]
        assert any(f"method {OPS_METHOD[a]} not served" in first for a in needed), first
        judged += 1
    assert judged >= 10
    archive = got["cutover.exit.v4-binary-retained"]
    assert archive[0] == "UNOBSERVABLE"
    assert "no provider configured for 'archive' evidence" in archive[1]
