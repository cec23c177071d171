"""Helpers gate modules use to read the run's observation and turn judgements into verdicts: what a
daemon's answers show (tmux sessions, uptime, projection version, readiness), provider evidence of
a record type and whether a source that could not be read is absent or broken, judgements of
several sources combined into one, a gate concluded with its evidence kept, and the judgements
several phase gates share.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from itertools import pairwise
from typing import Any
from typing import TypeVar

from pytest_canarygate.agtmux.judgement import Judgement
from pytest_canarygate.agtmux.judgement import TimedEvent
from pytest_canarygate.agtmux.judgement import alerts_at_or_above
from pytest_canarygate.agtmux.judgement import archive_retained
from pytest_canarygate.agtmux.judgement import daemon_ready
from pytest_canarygate.agtmux.judgement import drained_for
from pytest_canarygate.agtmux.judgement import enforce
from pytest_canarygate.agtmux.judgement import format_duration
from pytest_canarygate.agtmux.judgement import hold_downs_in_window
from pytest_canarygate.agtmux.judgement import phase_running_for
from pytest_canarygate.agtmux.judgement import restore_dry_run_latest
from pytest_canarygate.agtmux.judgement import snapshot_at_current_state
from pytest_canarygate.agtmux.judgement import sources_healthy
from pytest_canarygate.agtmux.judgement import startup_sequence
from pytest_canarygate.agtmux.judgement import uptime_at_least
from pytest_canarygate.agtmux.judgement import zero_sessions
from pytest_canarygate.agtmux.memo import derived
from pytest_canarygate.agtmux.protocol import Record
from pytest_canarygate.agtmux.protocol import agent_sessions
from pytest_canarygate.agtmux.protocol import failure_message
from pytest_canarygate.agtmux.protocol import panes
from pytest_canarygate.agtmux.protocol import refuse_future_times
from pytest_canarygate.agtmux.protocol import sessions_by_name
from pytest_canarygate.agtmux.providers.base import Evidence
from pytest_canarygate.agtmux.records import AlertEntry
from pytest_canarygate.agtmux.records import ArchiveManifest
from pytest_canarygate.agtmux.records import LogEvent
from pytest_canarygate.agtmux.records import RuntimeSelector
from pytest_canarygate.agtmux.records import Severity
from pytest_canarygate.agtmux.records import SnapshotMetadata
from pytest_canarygate.agtmux.records import SupervisorEvent
from pytest_canarygate.agtmux.records import datetime_to_ms
from pytest_canarygate.agtmux.settings import AgtmuxSettings
from pytest_canarygate.custody import CustodyView
from pytest_canarygate.observation import DaemonView
from pytest_canarygate.observation import ObservedView
from pytest_canarygate.verdicts import GateOutcome
from pytest_canarygate.verdicts import Unobservable
from pytest_canarygate.verdicts import Verdict

# --- sessions, uptime and operations evidence, as the gates read them --------------------

R = TypeVar("R")

#: ``daemon.info.nonce``: "<pid>-<nanoseconds since the Unix epoch at start>" (daemon facts 2.10).
NONCE = re.compile(r"(?P<pid>[0-9]+)-(?P<ns>[0-9]{1,20})")


def sessions_of(view: DaemonView) -> dict[str, list[Record]]:
    """The tmux sessions the daemon's ``list_panes`` shows, name -> panes (ghosts have none)."""
    return sessions_by_name(panes(view))


def daemon_info(view: DaemonView) -> dict[str, Any]:
    """The daemon's ``daemon.info``: an object with a positive integer pid and a nonce whose
    start time is not in the future; when both readings were taken with one nonce (one
    process), they must say the same, else the answers contradict each other."""
    info = view.result("daemon.info", 1)
    where = f"{view.name} {view.endpoint} daemon.info"
    if not isinstance(info, dict):
        raise Unobservable(f"{where}: malformed answer {info!r:.120}")
    pid = info.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise Unobservable(f"{where}: pid {pid!r:.40} is not a positive integer")
    view.not_in_future(_started_at(view, 1), "daemon.info: the start time in its nonce")
    return info


def _one_process_one_answer(view: DaemonView) -> None:
    """Unobservable when both daemon.info readings carry one nonce (one process) but say
    different things: a process does not change its version or pid without restarting, so
    the answers contradict each other. A closing reading not taken, or failed, is judged
    where it matters."""
    try:
        first, second = view.result("daemon.info", 1), view.result("daemon.info", 2)
    except Unobservable:
        return
    if not (isinstance(first, dict) and isinstance(second, dict)):
        return
    if second.get("nonce") == first.get("nonce") and second != first:
        changed = sorted(k for k in first.keys() | second.keys() if first.get(k) != second.get(k))
        raise Unobservable(
            f"{view.name} {view.endpoint} daemon.info: one process (nonce {first.get('nonce')}) "
            f"answered differently at the start and the end of the observation "
            f"({', '.join(changed)}): the answers contradict each other"
        )


def _started_at(view: DaemonView, reading: int) -> datetime:
    _one_process_one_answer(view)
    info = view.result("daemon.info", reading)
    pid = info.get("pid") if isinstance(info, dict) else None
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise Unobservable(
            f"{view.name} {view.endpoint} daemon.info: pid {pid!r:.40} is not a positive integer"
        )
    nonce = info.get("nonce") if isinstance(info, dict) else None
    match = NONCE.fullmatch(nonce) if isinstance(nonce, str) else None
    if match is None:
        raise Unobservable(
            f"{view.name} {view.endpoint} daemon.info: no nonce '<pid>-<ns since epoch>' in "
            f"{info!r:.120}"
        )
    seconds, nanos = divmod(int(match["ns"]), 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=timezone.utc) + timedelta(microseconds=nanos // 1000)


def daemon_uptime(view: DaemonView, now: datetime) -> timedelta:
    """How long the daemon has run without a restart, from the start time in its nonce; if it
    restarted during the observation, from the later start. Only a closing ``daemon.info`` that
    was not taken at all is skipped: one that failed (the daemon died during the observation)
    or has no nonce is Unobservable, and so is a start after the run's clock plus the allowed
    skew."""
    started = _started_at(view, 1)
    try:
        view.call("daemon.info", 2)
    except Unobservable:
        pass  # the closing daemon.info was not taken in this run: the opening one stands
    else:
        try:
            started = max(started, _started_at(view, 2))
        except Unobservable as exc:
            raise Unobservable(
                f"{view.name} closing daemon.info, read at the end of the observation, failed "
                f"(did the daemon die or restart during it?): {exc}"
            ) from None
    view.not_in_future(started, "daemon.info: the start time in its nonce")
    return max(timedelta(0), now - started)


def projection_version(view: DaemonView) -> int:
    """The live projection version (``summary_changed.version`` of the first reading)."""
    versions = []
    for reading in (1, 2):
        try:
            result = view.result("summary_changed", reading)
        except Unobservable:
            if reading == 1:
                raise
            break  # the second reading was not taken in this run
        version = result.get("version") if isinstance(result, dict) else None
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise Unobservable(
                f"{view.name} summary_changed: no projection version in {result!r:.120}"
            )
        versions.append(version)
    if len(versions) == 2 and versions[1] < versions[0] and _same_process(view):
        raise Unobservable(
            f"{view.name} summary_changed: the projection version went from {versions[0]} to "
            f"{versions[1]} within one daemon process: the answers contradict each other"
        )
    return versions[0]


def _same_process(view: DaemonView) -> bool:
    """True when both daemon.info readings were taken and carry the same nonce."""
    _one_process_one_answer(view)
    try:
        first, second = view.result("daemon.info", 1), view.result("daemon.info", 2)
    except Unobservable:
        return False
    nonce = first.get("nonce") if isinstance(first, dict) else None
    return nonce is not None and isinstance(second, dict) and second.get("nonce") == nonce


def evidence_of(observed: ObservedView, accessor: str, record_type: type[R]) -> Evidence[R]:
    """Provider evidence of ``accessor`` whose records are ``record_type`` (else Unobservable)."""
    evidence = observed.evidence(accessor)
    if not isinstance(evidence, Evidence) or not all(
        isinstance(r, record_type) for r in evidence.records
    ):
        raise Unobservable(
            f"{accessor} evidence is not {record_type.__name__} records: {evidence!r:.120}"
        )
    return evidence


def one_of(observed: ObservedView, accessor: str, record_type: type[R]) -> R:
    """The single record of a one-record accessor (a status, stats, a selector, a manifest)."""
    evidence = evidence_of(observed, accessor, record_type)
    if len(evidence.records) != 1:
        raise Unobservable(
            f"{accessor} evidence from {evidence.source}: expected one record, got "
            f"{len(evidence.records)}"
        )
    return evidence.records[0]


# --- judgements combined and concluded ---------------------------------------------------

_RANK = {Verdict.FAIL: 0, Verdict.UNOBSERVABLE: 1, Verdict.INCONCLUSIVE: 2, Verdict.PASS: 3}
_EITHER_RANK = {Verdict.FAIL: 0, Verdict.PASS: 1, Verdict.INCONCLUSIVE: 2, Verdict.UNOBSERVABLE: 3}

#: Why an evidence reading failed (``EvidenceReading.error_kind``) when its source is simply
#: not there: no provider configured, or the endpoint does not serve it (-32601, HTTP 404, no
#: such file). Every other failure means the source is there but its answer is unusable.
ABSENT_ERRORS = frozenset({"not-configured", "not-served"})


@dataclass(frozen=True, kw_only=True)
class Broken(Judgement):
    """UNOBSERVABLE because a configured, served source could not be used: it answered
    something malformed, or could not be read (protocol, remote, transport, timeout, untrusted
    errors; a record of the wrong type). ``source`` names the accessor."""

    source: str = ""


def evidence_absent(observed: ObservedView, accessor: str) -> bool:
    """True when ``accessor`` could not be read because its source is not there at all (not
    configured, or not served); False when it was read, or its source is broken."""
    reading = observed.observation.evidence.get(accessor)
    return reading is not None and not reading.ok and reading.error_kind in ABSENT_ERRORS


def evidence_part(
    observed: ObservedView, accessor: str, judge: Callable[[], Judgement]
) -> Judgement:
    """``judge`` run as one source's part of a combination (:func:`attempt`); UNOBSERVABLE on a
    source that is configured and served but unusable comes back :class:`Broken`."""
    judged = attempt(judge)
    if judged.verdict is Verdict.UNOBSERVABLE and not evidence_absent(observed, accessor):
        return Broken(
            verdict=Verdict.UNOBSERVABLE,
            message=judged.message,
            numbers=judged.numbers,
            source=accessor,
        )
    return judged


def history_part(
    observed: ObservedView, accessor: str, judge: Callable[[], Judgement], *, what: str
) -> Judgement:
    """A history that must back a current reading (AND, not either): an absent source (not
    configured or not served) leaves the window not shown, INCONCLUSIVE naming ``what`` was
    missing and why; a broken one stays UNOBSERVABLE."""
    judged = attempt(judge)
    if judged.verdict is Verdict.UNOBSERVABLE and evidence_absent(observed, accessor):
        return Judgement(
            verdict=Verdict.INCONCLUSIVE,
            message=f"{what} not shown, no history: {judged.message}",
            numbers=judged.numbers,
        )
    return judged


def attempt(judge: Callable[[], Judgement]) -> Judgement:
    """Run ``judge``; a gate outcome it raises (Unobservable, Inconclusive, GateFailed) comes
    back as a Judgement, so one missing source does not hide another's finding."""
    try:
        return judge()
    except GateOutcome as exc:
        return Judgement(verdict=exc.verdict, message=str(exc))


@dataclass(frozen=True, kw_only=True)
class Combined(Judgement):
    """A judgement made of labelled parts; ``leaves`` holds (label path, verdict, message) of
    every part, nested combinations flattened, so a message never nests another's."""

    leaves: tuple[tuple[str, Verdict, str], ...] = ()


def _leaves(label: str, judgement: Judgement) -> list[tuple[str, Verdict, str]]:
    if isinstance(judgement, Combined):
        return [(f"{label} / {path}", v, m) for path, v, m in judgement.leaves]
    return [(label, judgement.verdict, judgement.message)]


def _combined(
    verdict: Verdict, headline: str, parts: Mapping[str, Judgement], rank: Mapping[Verdict, int]
) -> Combined:
    leaves = tuple(leaf for label, j in parts.items() for leaf in _leaves(label, j))
    if verdict is Verdict.PASS:
        used = [f"{path}: {m}" for path, v, m in leaves if v is Verdict.PASS]
        unused = [f"{path} {v}: {m}" for path, v, m in leaves if v is not Verdict.PASS]
        message = "; ".join(used) + (f" (not used: {'; '.join(unused)})" if unused else "")
    else:
        ranked = sorted(
            (leaf for leaf in leaves if leaf[1] is not Verdict.PASS), key=lambda leaf: rank[leaf[1]]
        )
        message = failure_message(headline, [f"{path} {v}: {m}" for path, v, m in ranked])
    return Combined(
        verdict=verdict,
        message=message,
        numbers={label: dict(j.numbers) for label, j in parts.items()},
        findings=tuple(f for j in parts.values() for f in j.findings),
        leaves=leaves,
    )


def combine(headline: str, parts: Mapping[str, Judgement]) -> Judgement:
    """All ``parts`` must pass: the worst verdict wins (FAIL, UNOBSERVABLE, INCONCLUSIVE, PASS).
    The message's first line is ``headline: <worst part>``, then every part that did not pass."""
    verdict = min((j.verdict for j in parts.values()), key=_RANK.__getitem__)
    return _combined(verdict, headline, parts, _RANK)


def either(headline: str, parts: Mapping[str, Judgement]) -> Judgement:
    """Any one source may prove the criterion, unless another one is broken. In order:

    1. FAIL if any part found a violation.
    2. A :class:`Broken` part (UNOBSERVABLE although its source is configured and served: it
       answered something malformed or could not be read) may hide the violation the other
       sources do not show, so the verdict is at best INCONCLUSIVE: INCONCLUSIVE if another part
       passed or was read but fell short, else UNOBSERVABLE. The broken part comes first in the
       message.
    3. PASS if any part passed (the others are named as not used).
    4. INCONCLUSIVE if a source was read but fell short, else UNOBSERVABLE.

    A part UNOBSERVABLE because its source is absent (not configured, not served) never caps:
    a deployment that keeps one of the histories is proven by the other."""
    verdicts = {j.verdict for j in parts.values()}
    if Verdict.FAIL in verdicts:
        return combine(headline, parts)
    broken = [label for label, j in parts.items() if isinstance(j, Broken)]
    if broken:
        others = [j.verdict for label, j in parts.items() if label not in broken]
        read = {Verdict.PASS, Verdict.INCONCLUSIVE} & set(others)
        verdict = Verdict.INCONCLUSIVE if read else Verdict.UNOBSERVABLE
        unusable = ", ".join(broken)
        first: list[tuple[str, Verdict, str]] = []
        rest: list[tuple[str, Verdict, str]] = []
        for label, judged in parts.items():
            for path, v, m in _leaves(label, judged):
                if label in broken:
                    first.append((path, v, f"configured but unusable: {m}"))
                elif v is Verdict.PASS:
                    rest.append((path, v, f"not enough while {unusable} is unusable: {m}"))
                else:
                    rest.append((path, v, m))
        leaves = (*first, *rest)
        return Combined(
            verdict=verdict,
            message=failure_message(headline, [f"{p} {v}: {m}" for p, v, m in leaves]),
            numbers={label: dict(j.numbers) for label, j in parts.items()},
            findings=tuple(f for j in parts.values() for f in j.findings),
            leaves=leaves,
        )
    verdict = min(verdicts, key=_EITHER_RANK.__getitem__)
    return _combined(verdict, headline, parts, _EITHER_RANK)


def conclude(observed: ObservedView, name: str, judgement: Judgement) -> Judgement:
    """Keep the judgement's verdict, message and numbers as evidence ``name``, then end the
    gate with its verdict (:func:`~pytest_canarygate.agtmux.judgement.enforce`)."""
    __tracebackhide__ = True
    observed.note(
        name,
        {
            "verdict": judgement.verdict.value,
            "message": judgement.message,
            "numbers": dict(judgement.numbers),
        },
    )
    return enforce(judgement)


# --- shared judgements of the phase gates ------------------------------------------------


def max_lag(settings: AgtmuxSettings) -> timedelta:
    """How long before now a history may end and still count as reaching now."""
    return timedelta(minutes=settings.thresholds.coverage_lag_min)


def restore_dry_run_now(observed: ObservedView, settings: AgtmuxSettings) -> Judgement:
    """``RestoreDryRun::check`` recomputed on the newest snapshot against the live v5
    projection version, the observation's clock and the configured max age."""
    snapshots = evidence_of(observed, "snapshots", SnapshotMetadata).records
    return restore_dry_run_latest(
        snapshots,
        projection_version(observed.daemon("v5")),
        datetime_to_ms(observed.now),
        settings.thresholds.snapshot_max_age_ms,
    )


History = Callable[[Sequence[TimedEvent], Evidence[Any]], Judgement]


def from_history(observed: ObservedView, headline: str, judge: History) -> Judgement:
    """Judge the supervisor event history and the daemon log with ``judge(events, evidence)``;
    either proves the criterion (:func:`either`): the log is how today's daemon shows
    hold-downs and reconnects (daemon facts 5.4), the event history how a v5 deployment may."""

    def read(accessor: str, record_type: type[Any]) -> Judgement:
        def run() -> Judgement:
            events = evidence_of(observed, accessor, record_type)
            return judge(events.records, events)

        return evidence_part(observed, accessor, run)

    return either(
        headline,
        {
            "supervisor events": read("supervisor_events", SupervisorEvent),
            "daemon log": read("log_events", LogEvent),
        },
    )


def snapshot_recorded(
    observed: ObservedView, settings: AgtmuxSettings, *, since_selector_change: bool = False
) -> Judgement:
    """A v5 snapshot at the current state: the newest one taken since v5's process started is
    ``snap-<n>`` metadata holding v5's live projection version. ``since_selector_change``: it
    must also be taken since the runtime selector last changed (post-rollback: after routing
    went back to v4); a selector that does not say when is INCONCLUSIVE."""
    v5 = observed.daemon("v5")
    snapshots = evidence_of(observed, "snapshots", SnapshotMetadata).records
    current = projection_version(v5)
    since_ms = datetime_to_ms(observed.now - daemon_uptime(v5, observed.now))
    since = "v5's process started (its daemon.info nonce)"
    if since_selector_change:
        selector = one_of(observed, "runtime_selector", RuntimeSelector)
        if selector.changed_at_ms is None:
            return Judgement(
                verdict=Verdict.INCONCLUSIVE,
                message="the runtime selector does not say when it changed (no changed_at_ms): "
                "whether a v5 snapshot was taken after routing went back to v4 is not shown",
            )
        if selector.changed_at_ms >= since_ms:
            since_ms = selector.changed_at_ms
            since = f"the runtime selector changed to default_daemon={selector.default_daemon!r}"
    return snapshot_at_current_state(
        snapshots, current, datetime_to_ms(observed.now), since_ms=since_ms, since=since
    )


def hold_downs(observed: ObservedView, settings: AgtmuxSettings, window: timedelta) -> Judgement:
    """Zero supervisor HoldDown events in ``window`` (supervisor events or daemon log)."""
    lag = max_lag(settings)
    return from_history(
        observed,
        f"supervisor HoldDown in the last {format_duration(window)}",
        lambda events, coverage: hold_downs_in_window(
            events, window, observed.now, coverage, max_lag=lag
        ),
    )


def supervisor_history(
    observed: ObservedView,
) -> tuple[tuple[SupervisorEvent, ...] | None, int | None]:
    """The supervisor's events and from when they are complete (epoch ms); (None, None) when
    the deployment keeps no event history (not configured, not served). A broken history is
    Unobservable: it may hold what the gate looks for."""
    if evidence_absent(observed, "supervisor_events"):
        return None, None
    events = evidence_of(observed, "supervisor_events", SupervisorEvent)
    covers_from = datetime_to_ms(events.covers_from) if events.covers_from else None
    return events.records, covers_from


def startup_order_shown(observed: ObservedView) -> Judgement:
    """The startup order as the supervisor's stage events show it (:func:`startup_sequence`);
    without an event history the order is not observable."""
    events = evidence_of(observed, "supervisor_events", SupervisorEvent)
    covers_from = datetime_to_ms(events.covers_from) if events.covers_from else None
    return startup_sequence(events.records, covers_from_ms=covers_from)


def monitoring_window(settings: AgtmuxSettings) -> timedelta:
    """The runbook's monitoring window (Phase 1's 24h): how far back the alpha monitoring gates
    and the rollback signals look."""
    return timedelta(hours=settings.windows.alpha_monitor_h)


def alerts_from(
    observed: ObservedView, settings: AgtmuxSettings, floor: Severity, window: timedelta
) -> Judgement:
    """No alert of ``floor`` or above created or open in ``window`` (alert ledger)."""
    entries = evidence_of(observed, "alert_entries", AlertEntry)
    return alerts_at_or_above(
        entries.records, floor, window, observed.now, entries, max_lag=max_lag(settings)
    )


def up_for(observed: ObservedView, window: timedelta, daemon: str = "v5") -> Judgement:
    """The daemon has run without a restart for ``window`` (its nonce's start time)."""
    uptime = daemon_uptime(observed.daemon(daemon), observed.now)
    return uptime_at_least(uptime, window, now=observed.now, who=daemon)


def phase_for(observed: ObservedView, window: timedelta, phase: str) -> Judgement:
    """The phase has run for ``window``: since the later of v5's start (its nonce) and the
    runtime selector's last change (``changed_at_ms``)."""
    selector = one_of(observed, "runtime_selector", RuntimeSelector)
    started = observed.now - daemon_uptime(observed.daemon("v5"), observed.now)
    return phase_running_for(selector, started, window, now=observed.now, phase=phase)


def stable_for(
    observed: ObservedView,
    settings: AgtmuxSettings,
    window: timedelta,
    *,
    phase: str | None = None,
) -> Judgement:
    """v5 stable over ``window``: up without a restart for all of it (with a ``phase``: the
    phase running for all of it, :func:`phase_for`), no supervisor HoldDown and no alert at or
    above Degraded in it."""
    span = format_duration(window)
    running: Callable[[], Judgement] = (
        (lambda: up_for(observed, window))
        if phase is None
        else (lambda: phase_for(observed, window, phase))
    )
    return combine(
        f"v5 not shown stable for {span}",
        {
            "uptime" if phase is None else "phase": attempt(running),
            "hold-downs": attempt(lambda: hold_downs(observed, settings, window)),
            "alerts": attempt(lambda: alerts_from(observed, settings, Severity.DEGRADED, window)),
        },
    )


def daemon_sources(observed: ObservedView, settings: AgtmuxSettings, daemon: str) -> Judgement:
    """The daemon's registered sources all active and its expected sources healthy (with
    ``[sources] expected_healthy = "*"``, every source its ``list_source_health`` lists)."""
    view = observed.daemon(daemon)
    health, registry = view.result("list_source_health"), view.result("list_source_registry")
    for method, answer in (("list_source_health", health), ("list_source_registry", registry)):
        if isinstance(answer, list):
            refuse_future_times(view, method, answer)
    return sources_healthy(
        health,
        registry,
        settings.expected_healthy_sources,
        who=daemon,
    )


def ready(observed: ObservedView, daemon: str = "v4") -> Judgement:
    """The daemon has completed a pipeline tick (``latency_status`` not "not_started"), so an
    empty answer from it means something (daemon facts 13)."""
    return view_ready(observed.daemon(daemon), who=daemon)


def view_ready(view: DaemonView, *, who: str) -> Judgement:
    """:func:`ready` of a daemon's view (``who`` names it in the message)."""
    record = view.call("latency_status")
    if not record.ok:
        return daemon_ready(view.result("latency_status"), who=who)  # raises Unobservable
    # judged once per answer: every per-session gate asks
    return derived(record, ("ready", who), lambda: daemon_ready(record.result, who=who))


def no_v4_sessions(observed: ObservedView) -> Judgement:
    """Zero v4 sessions: v4 is ready, its ``list_sessions`` is empty and it manages no pane."""
    v4 = observed.daemon("v4")
    return combine(
        "v4 sessions not shown gone",
        {
            "sessions": attempt(lambda: zero_sessions(agent_sessions(v4), panes(v4), who="v4")),
            "readiness": attempt(lambda: ready(observed, "v4")),
        },
    )


def v4_drained_for(observed: ObservedView, window: timedelta) -> Judgement:
    """No session on v4 for ``window``: ready, holding nothing, up at least that long."""
    v4 = observed.daemon("v4")
    return combine(
        f"v4 not shown free of sessions for {format_duration(window)}",
        {
            "sessions": attempt(
                lambda: drained_for(
                    agent_sessions(v4),
                    panes(v4),
                    daemon_uptime(v4, observed.now),
                    window,
                    now=observed.now,
                    who="v4",
                )
            ),
            "readiness": attempt(lambda: ready(observed, "v4")),
        },
    )


def archive_judgement(observed: ObservedView, settings: AgtmuxSettings) -> Judgement:
    """The v4 binary archived beside its manifest, intact, retained for the configured days."""
    manifest = one_of(observed, "archive_manifest", ArchiveManifest)
    retention = timedelta(days=settings.windows.archive_retention_days)
    return archive_retained(manifest, observed.now, retention)


# --- time in phase, from the archive ------------------------------------------------------

_GOOD = frozenset({"PASS", "WAIVED"})


def _when(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def time_in_phase(custody: CustodyView, now: datetime) -> timedelta:
    """How long the phase has run since the start the archive shows (zero when it shows none)."""
    start = custody.custody.soak.get("phase_start")
    return max(timedelta(0), now - _when(start)) if start else timedelta(0)


def soak_from_archive(
    custody: CustodyView, window: timedelta, now: datetime, *, what: str
) -> Judgement:
    """``what`` held for ``window`` since the phase started, measured from the archive
    (docs/chain-of-custody.md): the phase starts with its first archived run whose entry gates
    all passed; every archived run since must have its monitor gates PASS or WAIVED (else
    FAIL naming the run); runs may be at most ``[chain] max_monitor_gap_h`` apart, and the
    last one at most that long before now (else INCONCLUSIVE naming the gap); the span from
    the phase start to now must reach ``window`` (else INCONCLUSIVE with the span covered)."""
    soak = custody.custody.soak
    span = format_duration(window)
    start_text = soak.get("phase_start")
    if not start_text:
        return Judgement(
            verdict=Verdict.INCONCLUSIVE,
            message=f"{what}: the phase has not started in the archive (no signed, live run of "
            f"this phase whose entry gates all passed), so none of the {span} is shown",
        )
    start = _when(start_text)
    gap = timedelta(hours=float(soak.get("max_gap_h", 6.0)))
    runs = soak.get("runs", [])
    numbers: dict[str, object] = {"phase_start": start_text, "runs": len(runs)}
    for run in runs:
        bad = {g: v for g, v in run["monitor"].items() if v not in _GOOD}
        if bad:
            gate_id, verdict = sorted(bad.items())[0]
            return Judgement(
                verdict=Verdict.FAIL,
                message=f"{what}: the archived run {run['bundle']} of this phase has "
                f"{gate_id} {verdict}: the phase was not stable since it started at "
                f"{start_text}",
                numbers=numbers,
            )
    unverified = soak.get("unverified") or []
    if unverified:
        return Judgement(
            verdict=Verdict.INCONCLUSIVE,
            message=f"{what}: {len(unverified)} bundle(s) of this phase since it started do "
            f"not verify ({', '.join(unverified[:3])}): a failing run cannot be ruled out "
            "(check them with `canarygate verify`)",
            numbers=numbers,
        )
    # Only a run that judged every monitor gate, at the runbook's numbers, through no relay,
    # shows the phase monitored: a partial or loosened run fills no gap.
    counted = [r for r in runs if r.get("counts", True)]
    numbers["monitor_runs"] = len(counted)
    moments = [start, *(_when(r["finished_at"]) for r in counted), now]
    for before, after in pairwise(moments):
        if after - before > gap:
            return Judgement(
                verdict=Verdict.INCONCLUSIVE,
                message=f"{what}: no archived monitor run between {before.isoformat()} and "
                f"{after.isoformat()} ({format_duration(after - before)}, more than the "
                f"{format_duration(gap)} [chain] max_monitor_gap_h allows)"
                + (
                    f"; {len(runs) - len(counted)} run(s) judged only part of the monitor gates, "
                    "a loosened config or through a relay, and do not count"
                    if len(counted) < len(runs)
                    else ""
                ),
                numbers=numbers,
            )
    covered = now - start
    numbers["covered_s"] = covered.total_seconds()
    if covered < window:
        return Judgement(
            verdict=Verdict.INCONCLUSIVE,
            message=f"{what}: the archive covers {format_duration(covered)} of the {span} since "
            f"the phase started at {start_text}",
            numbers=numbers,
        )
    return Judgement(
        verdict=Verdict.PASS,
        message=f"{what}: {len(counted)} archived monitor run(s) over "
        f"{format_duration(covered)} since {start_text}, none failing, no gap over "
        f"{format_duration(gap)}",
        numbers=numbers,
    )


#: The gates that judge a restore dry-run, per phase that has one.
RESTORE_DRY_RUN_GATES = {
    "alpha": ("prereq.restore-dry-run", "alpha.exit.restore-dry-run"),
    "canary": ("canary.pre.restore-dry-run",),
}


def restore_evidence_in_archive(custody: CustodyView) -> Judgement:
    """ "Restore dry-run evidence retained": the signed bundles this run relies on hold a
    passing restore dry-run for each phase that judges one (alpha, canary)."""
    problems: list[str] = []
    shown: list[str] = []
    for phase, gate_ids in RESTORE_DRY_RUN_GATES.items():
        try:
            link = custody.link(phase)
        except GateOutcome as exc:
            problems.append(f"{phase}: {exc}")
            continue
        verdicts = link.get("gates", {})
        missing = [g for g in gate_ids if verdicts.get(g) != Verdict.PASS.value]
        if missing:
            got = ", ".join(f"{g} {verdicts.get(g, 'not in the bundle')}" for g in missing)
            problems.append(f"{phase} bundle {link['bundle']}: {got}")
        else:
            shown.append(f"{phase} bundle {link['bundle']}: {', '.join(gate_ids)} PASS")
    if problems:
        return Judgement(
            verdict=Verdict.INCONCLUSIVE,
            message="restore dry-run evidence not shown retained in the archive: "
            + "; ".join(problems),
        )
    return Judgement(
        verdict=Verdict.PASS,
        message="restore dry-run evidence retained: " + "; ".join(shown),
    )


#: "Add 2-3 more sessions per day": no more than this many within any 24h.
MAX_SESSIONS_ADDED_PER_DAY = 3


def canary_expansion(custody: CustodyView, current: Sequence[str], now: datetime) -> Judgement:
    """ "Expand canary if stable: add 2-3 more sessions per day, continue monitoring at each
    expansion", judged from the canary sessions each archived run of the canary recorded
    (statement ``facts``) and this run's selector: an expansion is a run naming sessions the
    run before did not; no 24h may add more than three; and between two expansions a run must
    have passed its monitor gates (the expanded canary was monitored before growing again)."""
    soak = custody.custody.soak
    if not soak.get("phase_start"):
        return Judgement(
            verdict=Verdict.INCONCLUSIVE,
            message="the canary has not started in the archive (no signed, live canary run whose "
            "entry gates all passed): its expansion cannot be judged",
        )
    history: list[tuple[datetime, frozenset[str], bool]] = []
    for run in soak.get("runs", []):
        sessions = run.get("facts", {}).get("canary_sessions")
        if sessions is not None:
            passed = all(v in _GOOD for v in run["monitor"].values())
            history.append((_when(run["started_at"]), frozenset(sessions), passed))
    history.append((now, frozenset(current), False))
    expansions: list[tuple[datetime, frozenset[str]]] = []
    for (_, before, _), (when, after, _) in pairwise(history):
        if after - before:
            expansions.append((when, after - before))
    for when, _ in expansions:
        recent = [added for at, added in expansions if when - timedelta(hours=24) < at <= when]
        total = sum(len(added) for added in recent)
        if total > MAX_SESSIONS_ADDED_PER_DAY:
            names = ", ".join(sorted(set().union(*recent)))
            return Judgement(
                verdict=Verdict.FAIL,
                message=f"{total} canary sessions added within the 24h up to {when.isoformat()} "
                f"({names}): the runbook adds 2-3 more per day",
            )
    for (first, _), (second, added) in pairwise(expansions):
        monitored = any(passed for at, _, passed in history if first <= at < second)
        if not monitored:
            return Judgement(
                verdict=Verdict.FAIL,
                message=f"the canary grew again at {second.isoformat()} "
                f"({', '.join(sorted(added))}) with no passing monitor run since it grew at "
                f"{first.isoformat()}: continue monitoring at each expansion",
            )
    if not expansions:
        return Judgement(
            verdict=Verdict.PASS,
            message=f"no expansion since the canary started at {soak['phase_start']} "
            f"({len(current)} session(s))",
        )
    return Judgement(
        verdict=Verdict.PASS,
        message=f"{len(expansions)} expansion(s), none adding more than "
        f"{MAX_SESSIONS_ADDED_PER_DAY} sessions in 24h, each monitored before the next",
    )
