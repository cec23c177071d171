"""Judgements on the fleet as the migration routes it: the runtime selector for each phase and
how long the phase has run, which daemon serves the tmux and agent sessions (none left on v4 and
for how long, v4 keeping its sessions, the counts on each, every session served, the canary
sessions present and in use), and the v4 binary archived, not deleted.
"""

from __future__ import annotations

from collections.abc import Collection
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

from pytest_canarygate.agtmux.judgement.core import Judgement
from pytest_canarygate.agtmux.judgement.core import _aware
from pytest_canarygate.agtmux.judgement.core import _judgement
from pytest_canarygate.agtmux.judgement.core import format_duration
from pytest_canarygate.agtmux.judgement.core import format_time
from pytest_canarygate.agtmux.protocol import Change
from pytest_canarygate.agtmux.protocol import agent_session_keys
from pytest_canarygate.agtmux.protocol import managed
from pytest_canarygate.agtmux.protocol import sessions_by_name
from pytest_canarygate.agtmux.records import ArchiveManifest
from pytest_canarygate.agtmux.records import RuntimeSelector
from pytest_canarygate.agtmux.runbook import PHASES
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.verdicts import Verdict

# --- selector ----------------------------------------------------------------------------


def selector_matches_phase(
    selector: RuntimeSelector,
    phase: str,
    sessions_v4: Collection[str] = (),
    sessions_v5: Collection[str] = (),
) -> Judgement:
    """The runtime selector is right for ``phase``: alpha and rollback route everything to v4
    with v5 disabled; canary keeps default v4, enables v5 and names canary sessions that exist
    on both daemons; gradual and cutover default to v5 with v5 enabled. (That no v4 sessions
    remain at cutover is a separate gate.)"""
    if phase not in PHASES:
        raise ConfigError(f"unknown phase {phase!r}; known: {', '.join(PHASES)}")
    s = selector
    shown = (
        f"default_daemon={s.default_daemon!r}, v5_enabled={str(s.v5_enabled).lower()}, "
        f"v5_canary_sessions={list(s.v5_canary_sessions)}"
    )
    problems = []
    want_default = "v5" if phase in ("gradual", "cutover") else "v4"
    want_enabled = phase not in ("alpha", "rollback")
    if s.default_daemon != want_default:
        problems.append(f"default_daemon must be {want_default!r}")
    if s.v5_enabled != want_enabled:
        problems.append(f"v5_enabled must be {str(want_enabled).lower()}")
    if phase == "canary":
        if not s.v5_canary_sessions:
            problems.append("v5_canary_sessions names no session")
        for name, present in (("v4", sessions_v4), ("v5", sessions_v5)):
            missing = [x for x in s.v5_canary_sessions if x not in present]
            if missing:
                problems.append(f"canary sessions missing on {name}: {', '.join(missing)}")
    numbers = {
        "phase": phase,
        "default_daemon": s.default_daemon,
        "v5_enabled": s.v5_enabled,
        "v5_canary_sessions": list(s.v5_canary_sessions),
    }
    if problems:
        return _judgement(
            Verdict.FAIL, f"selector wrong for {phase} ({shown}): " + "; ".join(problems), **numbers
        )
    return _judgement(Verdict.PASS, f"selector right for {phase}: {shown}", **numbers)


def phase_running_for(
    selector: RuntimeSelector,
    started: datetime,
    required: timedelta,
    *,
    now: datetime,
    phase: str,
    who: str = "v5",
) -> Judgement:
    """The phase has run for ``required``: it started at the later of ``who``'s start
    (``started``) and the selector's last change (``changed_at_ms``). A selector that does not
    say when it changed leaves the phase's start unknown: INCONCLUSIVE."""
    now = _aware(now, "now")
    started = _aware(started, "started")
    changed = selector.changed_at
    numbers = {
        "phase": phase,
        "started_at": started.isoformat(),
        "selector_changed_at": None if changed is None else changed.isoformat(),
        "required_s": required.total_seconds(),
    }
    need = format_duration(required)
    if changed is None:
        message = (
            f"{phase} start unknown: the runtime selector does not say when it last changed "
            f"(no changed_at_ms; {who} up since {format_time(started)}); {need} not shown"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    start = max(started, changed)
    running = max(timedelta(0), now - start)
    numbers["running_s"] = running.total_seconds()
    why = f"{who} started {format_time(started)}, selector last changed {format_time(changed)}"
    if changed > now + timedelta(minutes=1):
        message = (
            f"{phase} start unknown: the runtime selector says it changed at "
            f"{format_time(changed)}, after now ({format_time(now)}): clocks disagree"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    if running < required:
        message = (
            f"{phase} running {format_duration(running)} since {format_time(start)} ({why}), "
            f"less than the required {need}"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    message = (
        f"{phase} running {format_duration(running)} since {format_time(start)} ({why}) >= {need}"
    )
    return _judgement(Verdict.PASS, message, **numbers)


# --- sessions across daemons (list_panes / list_sessions records) ------------------------


Pane = Mapping[str, object]


def zero_sessions(
    agent_sessions: Sequence[Mapping[str, object]], panes: Sequence[Pane], *, who: str = "v4"
) -> Judgement:
    """No session left on ``who``: its ``list_sessions`` is empty and it manages no pane."""
    managed_panes = managed(panes)
    numbers = {"agent_sessions": len(agent_sessions), "managed_panes": len(managed_panes)}
    if agent_sessions or managed_panes:
        tmux = sorted(sessions_by_name(managed_panes))
        keys = [str(s.get("session_key")) for s in agent_sessions[:5]]
        message = (
            f"{who} still serves {len(agent_sessions)} agent sessions "
            f"({', '.join(keys)}{', ...' if len(agent_sessions) > 5 else ''}) and manages "
            f"{len(managed_panes)} panes in tmux sessions {', '.join(tmux) or '(none named)'}"
        )
        return _judgement(Verdict.FAIL, message, **numbers)
    return _judgement(
        Verdict.PASS, f"zero {who} sessions: no agent session, no managed pane", **numbers
    )


def drained_for(
    agent_sessions: Sequence[Mapping[str, object]],
    panes: Sequence[Pane],
    uptime: timedelta,
    required: timedelta,
    *,
    now: datetime,
    who: str = "v4",
) -> Judgement:
    """No session on ``who`` for ``required``: it holds no agent session and no managed pane,
    and has run without a restart for at least ``required``. Managed panes are never removed
    and only a restart clears them (daemon facts 2.1), so none now on a daemon up that long
    means none at any time since it started."""
    now = _aware(now, "now")
    held = zero_sessions(agent_sessions, panes, who=who)
    started = now - uptime
    numbers = {
        **held.numbers,
        "uptime_s": uptime.total_seconds(),
        "required_s": required.total_seconds(),
    }
    if not held.passed:
        return _judgement(held.verdict, held.message, **numbers)
    need = format_duration(required)
    if uptime < required:
        message = (
            f"{who} holds no session, but it has been up only {format_duration(uptime)} (since "
            f"{format_time(started)}): a restart clears every session, so none shows only since "
            f"then, less than the required {need}"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    message = (
        f"{who} has held no session for {format_duration(uptime)} (up since "
        f"{format_time(started)}; managed panes are never removed) >= {need}"
    )
    return _judgement(Verdict.PASS, message, **numbers)


def keeps_its_sessions(
    agent_sessions: Sequence[Mapping[str, object]],
    panes: Sequence[Pane],
    started: datetime,
    phase_start: datetime | None,
    *,
    who: str = "v4",
    phase: str = "gradual",
) -> Judgement:
    """Existing sessions continue on ``who`` until restart: agent sessions without any managed
    pane FAIL (it stopped serving what it holds); managed panes PASS; holding nothing passes
    only when ``who`` has run since before the phase began (``phase_start``), so nothing was
    there to continue; after a restart inside the phase, or with the phase's start unknown,
    whether its sessions continued is not shown (INCONCLUSIVE)."""
    started = _aware(started, "started")
    managed_panes = managed(panes)
    tmux = sorted(sessions_by_name(managed_panes))
    numbers = {
        "agent_sessions": len(agent_sessions),
        "managed_panes": len(managed_panes),
        "tmux_sessions": tmux,
        "started_at": started.isoformat(),
        "phase_start": None if phase_start is None else phase_start.isoformat(),
    }
    if agent_sessions and not managed_panes:
        message = (
            f"{who} holds {len(agent_sessions)} agent sessions but manages no pane: its "
            "existing sessions are no longer served"
        )
        return _judgement(Verdict.FAIL, message, **numbers)
    if managed_panes:
        message = (
            f"{who} serves {len(agent_sessions)} agent sessions in {len(managed_panes)} managed "
            f"panes (tmux sessions {', '.join(tmux) or 'none named'})"
        )
        return _judgement(Verdict.PASS, message, **numbers)
    if phase_start is None:
        message = (
            f"{who} holds no session, and when the {phase} phase began is unknown (the runtime "
            "selector has no changed_at_ms): whether its sessions continued is not shown"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    phase_start = _aware(phase_start, "phase_start")
    if started > phase_start:
        message = (
            f"{who} holds no session, but it restarted at {format_time(started)}, after the "
            f"{phase} phase began at {format_time(phase_start)}: a restart clears every "
            "session, so whether its sessions continued is not shown"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    message = (
        f"{who} holds no session and has run since {format_time(started)}, before the {phase} "
        f"phase began at {format_time(phase_start)}: none was left on it to continue"
    )
    return _judgement(Verdict.PASS, message, **numbers)


def served_counts(
    panes: Sequence[Pane], agent_sessions: Sequence[Mapping[str, object]]
) -> dict[str, int]:
    """What one daemon serves: tmux sessions with managed panes, managed panes, agent sessions."""
    served = {n: len(managed(p)) for n, p in sessions_by_name(panes).items() if managed(p)}
    return {
        "tmux_sessions": len(served),
        "managed_panes": sum(served.values()),
        "agent_sessions": len(agent_sessions),
    }


def migration_counts(v4: Mapping[str, int], v5: Mapping[str, int]) -> Judgement:
    """Phase 3 "track v4 vs v5 session counts": both daemons' counts read, and v5 serving at
    least one agent session (new sessions go to v5; none on v5 shows no migration at all)."""
    numbers: dict[str, object] = {"v4": dict(v4), "v5": dict(v5)}
    total = v4["tmux_sessions"] + v5["tmux_sessions"]
    share = None if not total else round(v5["tmux_sessions"] / total, 3)
    numbers["v5_share_of_tmux_sessions"] = share

    def shown(counts: Mapping[str, int]) -> str:
        return (
            f"{counts['agent_sessions']} agent sessions, {counts['tmux_sessions']} tmux "
            f"sessions with {counts['managed_panes']} managed panes"
        )

    counts = f"v4 {shown(v4)}; v5 {shown(v5)}"
    if not v5["agent_sessions"]:
        return _judgement(
            Verdict.INCONCLUSIVE,
            f"v5 serves no agent session: no migration shown ({counts})",
            **numbers,
        )
    ratio = "" if share is None else f", v5 share of tmux sessions {share:.0%}"
    return _judgement(Verdict.PASS, f"migration counts: {counts}{ratio}", **numbers)


def sessions_served_by(
    source: Sequence[Pane], target: Sequence[Pane], *, src: str = "v5", dst: str = "v4"
) -> Judgement:
    """Every tmux session ``src`` shows is present on ``dst``, and where ``src`` manages panes
    in it, ``dst`` manages at least one there too."""
    seen, served = sessions_by_name(source), sessions_by_name(target)
    problems = []
    for name, session_panes in sorted(seen.items()):
        if name not in served:
            problems.append(f"session {name} is not on {dst}")
        elif managed(session_panes) and not managed(served[name]):
            problems.append(
                f"session {name}: {src} manages {len(managed(session_panes))} panes, {dst} none"
            )
    numbers = {
        f"{src}_sessions": sorted(seen),
        f"{dst}_sessions": sorted(served),
        "problems": len(problems),
    }
    if problems:
        return _judgement(
            Verdict.FAIL,
            f"{len(problems)} of {len(seen)} sessions seen on {src} not served by {dst}: "
            + "; ".join(problems),
            **numbers,
        )
    if not seen:
        return _judgement(
            Verdict.INCONCLUSIVE, f"no tmux session seen on {src}: nothing to check", **numbers
        )
    return _judgement(
        Verdict.PASS,
        f"all {len(seen)} sessions seen on {src} are served by {dst}: {', '.join(sorted(seen))}",
        **numbers,
    )


def canary_sessions_on(
    selector: RuntimeSelector, panes: Sequence[Pane], *, who: str = "v5"
) -> Judgement:
    """Every canary session the selector names is present on ``who`` with a managed pane."""
    sessions = sessions_by_name(panes)
    counts = {name: len(managed(sessions.get(name, ()))) for name in selector.v5_canary_sessions}
    problems = []
    for name, count in counts.items():
        if name not in sessions:
            problems.append(f"canary session {name} is not on {who}")
        elif not count:
            problems.append(f"canary session {name} has no managed pane on {who}")
    numbers = {"canary_sessions": list(selector.v5_canary_sessions), "managed_panes": counts}
    if not selector.v5_canary_sessions:
        return _judgement(Verdict.FAIL, "the selector names no canary session", **numbers)
    if problems:
        return _judgement(Verdict.FAIL, "; ".join(problems), **numbers)
    shown = ", ".join(f"{name} ({count} managed panes)" for name, count in counts.items())
    return _judgement(Verdict.PASS, f"canary sessions managed on {who}: {shown}", **numbers)


def canary_usage(selector: RuntimeSelector, panes: Sequence[Pane], *, who: str = "v5") -> Judgement:
    """The canary has active usage: at least one managed pane in the canary sessions on
    ``who`` (INCONCLUSIVE otherwise: an idle canary proves nothing)."""
    sessions = sessions_by_name(panes)
    counts = {name: len(managed(sessions.get(name, ()))) for name in selector.v5_canary_sessions}
    shown = ", ".join(f"{name} {count}" for name, count in counts.items()) or "none named"
    numbers = {"managed_panes": counts}
    if sum(counts.values()):
        return _judgement(
            Verdict.PASS, f"managed panes in canary sessions on {who}: {shown}", **numbers
        )
    message = f"no managed pane in any canary session on {who} ({shown}): no active usage"
    return _judgement(Verdict.INCONCLUSIVE, message, **numbers)


def canary_activity(
    selector: RuntimeSelector,
    panes: Sequence[Pane],
    changes: Iterable[Change],
    window: timedelta,
    *,
    now: datetime,
    who: str = "v5",
) -> Judgement:
    """The canary is in active use: a ``state_changed`` entry of a pane in the canary sessions
    (or of the agent session bound to one) stamped inside ``window``. Managed panes are never
    removed (daemon facts 2.1), so their presence alone proves nothing; none is INCONCLUSIVE."""
    now = _aware(now, "now")
    start = now - window
    canary = [p for p in managed(panes) if p.get("session_name") in selector.v5_canary_sessions]
    session_of = {str(p["pane_id"]): str(p.get("session_name")) for p in canary}
    changes = list(changes)
    keys = agent_session_keys([dict(p) for p in canary], changes)
    mine = [
        c for c in changes if c.pane_id in session_of or (not c.pane_id and c.session_key in keys)
    ]
    recent = [c for c in mine if c.at >= start]
    per_session: dict[str, int] = {}
    for c in recent:
        if c.pane_id in session_of:
            name = session_of[c.pane_id]
            per_session[name] = per_session.get(name, 0) + 1
    numbers = {
        "canary_panes": sorted(session_of),
        "changes_in_window": len(recent),
        "per_session": per_session,
        "window_s": window.total_seconds(),
    }
    if not recent:
        latest = max((c.at for c in mine), default=None)
        last = "never" if latest is None else f"last at {format_time(latest)}"
        message = (
            f"no activity in canary sessions since {format_time(start)}: no state_changed entry "
            f"for their {len(canary)} managed panes in the last {format_duration(window)} "
            f"({last})"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    shown = ", ".join(f"{name} {count}" for name, count in sorted(per_session.items()))
    latest = max(c.at for c in recent)
    message = (
        f"{len(recent)} state changes in canary sessions in the last "
        f"{format_duration(window)}, the latest at {format_time(latest)}"
        + (f" ({shown})" if shown else "")
    )
    return _judgement(Verdict.PASS, message, recent[-5:], **numbers)


# --- the v4 binary archive ---------------------------------------------------------------


def archive_retained(
    manifest: ArchiveManifest, now: datetime, retention: timedelta = timedelta(days=30)
) -> Judgement:
    """The v4 binary is archived, not deleted: present beside its manifest with the manifest's
    sha256, retained for at least ``retention`` after archiving, and still retained now."""
    now = _aware(now, "now")
    m = manifest
    numbers = {
        "binary": m.binary,
        "present": m.present,
        "sha256": m.sha256,
        "actual_sha256": m.actual_sha256,
        "archived_at_ms": m.archived_at_ms,
        "retain_until_ms": m.retain_until_ms,
        "retention_s": retention.total_seconds(),
    }
    problems = []
    if not m.present:
        problems.append(f"binary {m.binary} is not beside its manifest (deleted?)")
    elif m.actual_sha256 != m.sha256:
        problems.append(
            f"binary {m.binary} sha256 {m.actual_sha256} differs from the manifest's {m.sha256}"
        )
    declared = m.retain_until - m.archived_at
    if declared < retention:
        problems.append(
            f"retained {format_duration(declared)} ({format_time(m.archived_at)}.."
            f"{format_time(m.retain_until)}), less than {format_duration(retention)}"
        )
    if m.retain_until < now:
        problems.append(f"retention ended {format_time(m.retain_until)}, before now")
    if problems:
        return _judgement(
            Verdict.FAIL, "v4 binary archive: " + "; ".join(problems), (m,), **numbers
        )
    message = (
        f"v4 binary {m.binary} archived {format_time(m.archived_at)}, sha256 matches, retained "
        f"until {format_time(m.retain_until)} (>= {format_duration(retention)})"
    )
    return _judgement(Verdict.PASS, message, (m,), **numbers)


# --- v4 decommissioned (Phase 4) ----------------------------------------------------------

#: What one observation found at a daemon's endpoint: it answered, nothing runs there (no
#: socket, or a socket nobody listens on), or it could not be told (a timeout, an untrusted
#: socket, a broken answer).
ANSWERING, STOPPED, UNREADABLE = "answering", "stopped", "unreadable"
DAEMON_STATES = (ANSWERING, STOPPED, UNREADABLE)


@dataclass(frozen=True)
class Sighting:
    """What one archived run of the phase saw of v4 (its statement's ``facts``): ``state``
    one of :data:`DAEMON_STATES`; ``empty`` True when it was ready with no agent session and
    no managed pane (None: not judged); its ``daemon.info`` version when it answered."""

    bundle: str
    at: datetime
    state: str
    empty: bool | None = None
    version: str | None = None


def daemon_stopped(state: str, detail: str, *, who: str = "v4") -> Judgement:
    """``who`` is stopped: nothing runs at its endpoint (``state`` :data:`STOPPED`); one that
    answered FAILs (it is not decommissioned); one that could not be told is UNOBSERVABLE.
    ``detail`` says what the observation found there."""
    numbers = {"state": state}
    if state == STOPPED:
        return _judgement(Verdict.PASS, f"{who} is stopped: {detail}", **numbers)
    if state == ANSWERING:
        return _judgement(
            Verdict.FAIL, f"{who} is not decommissioned: it still answers ({detail})", **numbers
        )
    return _judgement(
        Verdict.UNOBSERVABLE,
        f"whether {who} is stopped cannot be told (neither no socket nor a refused connection "
        f"at its endpoint): {detail}",
        **numbers,
    )


def last_seen_running(sightings: Sequence[Sighting]) -> Sighting | None:
    """The newest sighting in which the daemon was not found stopped (None: never so seen)."""
    running = [s for s in sightings if s.state != STOPPED]
    return max(running, key=lambda s: s.at) if running else None


def first_seen_stopped(sightings: Sequence[Sighting], after: datetime | None) -> Sighting | None:
    """The oldest sighting of the daemon stopped after ``after`` (any, when None)."""
    stopped = [s for s in sightings if s.state == STOPPED and (after is None or s.at > after)]
    return min(stopped, key=lambda s: s.at) if stopped else None


def zero_sessions_decommissioned(
    detail: str, sightings: Sequence[Sighting], *, who: str = "v4", phase: str = "cutover"
) -> Judgement:
    """Zero ``who`` sessions because ``who`` is decommissioned (``detail``: what its endpoint
    showed now), after the last observation of it running showed it empty. That observation
    is the newest archived run of the phase that did not find it stopped; it must have found
    it answering, ready and empty. None, or one that found sessions or could not read it,
    leaves the sessions it held when it stopped unknown: INCONCLUSIVE."""
    last = last_seen_running(sightings)
    numbers: dict[str, object] = {"sightings": len(sightings)}
    if last is not None:
        numbers |= {"last_running_bundle": last.bundle, "last_running_at": last.at.isoformat()}
    gone = f"{who} is decommissioned ({detail})"
    remedy = (
        f"start {who} again and run the {phase} gates once to observe it empty, or waive the "
        "gate with the reason"
    )
    if last is None:
        message = (
            f"{gone}, but no archived run of the {phase} phase observed it running: whether it "
            f"held sessions when it stopped is not shown ({remedy})"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    when = f"{last.bundle}, at {format_time(last.at)}"
    if last.state == ANSWERING and last.empty is True:
        message = (
            f"zero {who} sessions: {gone}; the last observation of it running ({when}) showed "
            "it ready with no agent session and no managed pane"
        )
        return _judgement(Verdict.PASS, message, **numbers)
    seen = (
        "could not read it"
        if last.state != ANSWERING
        else "found it serving sessions"
        if last.empty is False
        else "did not judge its sessions"
    )
    message = (
        f"{gone}, but the last observation of it running ({when}) {seen}: whether its sessions "
        f"were migrated before it stopped is not shown ({remedy})"
    )
    return _judgement(Verdict.INCONCLUSIVE, message, **numbers)


def archive_past_decommission(
    manifest: ArchiveManifest,
    *,
    ran_version: str | None,
    ran_seen: str,
    decommissioned_after: datetime | None,
    decommissioned_by: datetime | None,
    now: datetime,
    retention: timedelta = timedelta(days=30),
) -> Judgement:
    """P4-X3: the archived v4 binary is present and intact, of the version the v4 that ran
    reported (``ran_version``, seen as ``ran_seen`` says), and retained ``retention`` past
    the decommission. The decommission happened after ``decommissioned_after`` (the last
    observation of v4 running; None: unknown) and by ``decommissioned_by`` (the first that
    found it stopped; None: v4 still runs). Retention ending before ``retention`` past the
    earliest possible moment FAILs; past the latest, PASSes; in between, or with v4 still
    running, INCONCLUSIVE."""
    now = _aware(now, "now")
    m = manifest
    need = format_duration(retention)
    numbers = {
        "binary": m.binary,
        "version": m.version,
        "ran_version": ran_version,
        "retain_until_ms": m.retain_until_ms,
        "decommissioned_after": None
        if decommissioned_after is None
        else decommissioned_after.isoformat(),
        "decommissioned_by": None if decommissioned_by is None else decommissioned_by.isoformat(),
        "retention_s": retention.total_seconds(),
    }
    failed, unknown = [], []
    if not m.present:
        failed.append(f"binary {m.binary} is not beside its manifest (deleted?)")
    elif m.actual_sha256 != m.sha256:
        failed.append(
            f"binary {m.binary} sha256 {m.actual_sha256} differs from the manifest's {m.sha256}"
        )
    if m.version is None:
        unknown.append(f'the manifest of {m.binary} does not say its version (add "version")')
    elif ran_version is None:
        unknown.append(f"the version of the v4 that ran is not recorded ({ran_seen})")
    elif m.version != ran_version:
        failed.append(
            f"binary {m.binary} is version {m.version}, but the v4 that ran was {ran_version} "
            f"({ran_seen})"
        )
    until = format_time(m.retain_until)
    if m.retain_until < now:
        failed.append(f"retention ended {until}, before now")
    elif decommissioned_by is None:
        unknown.append(
            f"v4 is not decommissioned yet, so {need} past its decommission is not fixed "
            f"(retained until {until})"
        )
    elif decommissioned_after is not None and m.retain_until < decommissioned_after + retention:
        failed.append(
            f"retained until {until}, less than {need} past the decommission (after "
            f"{format_time(decommissioned_after)}, when v4 was last seen running)"
        )
    elif m.retain_until < decommissioned_by + retention:
        since = (
            "" if decommissioned_after is None else f"after {format_time(decommissioned_after)} "
        )
        unknown.append(
            f"retained until {until}: {need} past the decommission is shown only if v4 stopped "
            f"{since}before {format_time(m.retain_until - retention)}, and it was first seen "
            f"stopped at {format_time(decommissioned_by)}"
        )
    if failed:
        return _judgement(
            Verdict.FAIL, "v4 binary archive: " + "; ".join(failed + unknown), (m,), **numbers
        )
    if unknown:
        return _judgement(
            Verdict.INCONCLUSIVE, "v4 binary archive: " + "; ".join(unknown), (m,), **numbers
        )
    assert decommissioned_by is not None
    message = (
        f"v4 binary {m.binary} version {m.version} (the v4 that ran: {ran_seen}) intact, "
        f"retained until {until}, >= {need} past the decommission (v4 first seen stopped "
        f"{format_time(decommissioned_by)})"
    )
    return _judgement(Verdict.PASS, message, (m,), **numbers)


# --- rollback: v5's sessions back on v4 ---------------------------------------------------

#: The fields of a pane that say what it is and where (daemon facts 2.1): after a rollback v4
#: must serve each pane v5 served with these unchanged. Activity, evidence and titles follow
#: each daemon's own ticks and sources, so they are not compared.
ROLLBACK_PANE_FIELDS = ("presence", "provider", "session_id", "session_name", "window_id")


def _served_sessions(panes: Sequence[Pane]) -> dict[str, list[Pane]]:
    """The named tmux sessions in which a daemon manages panes: name -> its managed panes."""
    return {name: managed(ps) for name, ps in sessions_by_name(panes).items() if managed(ps)}


def sessions_back_on(
    source: Sequence[Pane], target: Sequence[Pane], *, src: str = "v5", dst: str = "v4"
) -> Judgement:
    """RB-2: every tmux session ``src`` served (manages panes in) is on ``dst``, and every
    pane ``src`` manages there is managed by ``dst`` too (by pane id)."""
    served = _served_sessions(source)
    on_target = sessions_by_name(target)
    by_id = {str(p.get("pane_id")): p for p in target}
    problems = []
    for name, session_panes in sorted(served.items()):
        if name not in on_target:
            problems.append(
                f"session {name} is not on {dst} ({src} manages {len(session_panes)} panes in it)"
            )
            continue
        missing = [str(p["pane_id"]) for p in session_panes if str(p["pane_id"]) not in by_id]
        unmanaged = [
            str(p["pane_id"])
            for p in session_panes
            if str(p["pane_id"]) in by_id and by_id[str(p["pane_id"])].get("presence") != "managed"
        ]
        if unmanaged:
            problems.append(
                f"session {name}: {dst} does not manage panes {', '.join(unmanaged)} that {src} "
                "manages"
            )
        if missing:
            problems.append(f"session {name}: panes {', '.join(missing)} are not on {dst}")
    numbers = {
        f"{src}_sessions": sorted(served),
        f"{dst}_sessions": sorted(on_target),
        "problems": len(problems),
    }
    if problems:
        return _judgement(
            Verdict.FAIL,
            f"{len(problems)} problem(s) in the {len(served)} sessions {src} served, not served "
            f"by {dst}: " + "; ".join(problems),
            **numbers,
        )
    if not served:
        return _judgement(
            Verdict.INCONCLUSIVE,
            f"{src} manages no pane in any named tmux session: what was on it is not shown",
            **numbers,
        )
    shown = ", ".join(f"{n} ({len(ps)} panes)" for n, ps in sorted(served.items()))
    return _judgement(
        Verdict.PASS,
        f"every session {src} served is served by {dst} with its panes managed: {shown}",
        **numbers,
    )


def panes_as_served(
    source: Sequence[Pane], target: Sequence[Pane], *, src: str = "v5", dst: str = "v4"
) -> Judgement:
    """RB-3a "list_panes returns expected data": for every pane ``src`` manages in a named
    tmux session, ``dst`` lists the same pane id with the same :data:`ROLLBACK_PANE_FIELDS`."""
    expected = [p for ps in _served_sessions(source).values() for p in ps]
    by_id = {str(p.get("pane_id")): p for p in target}
    problems = []
    for pane in sorted(expected, key=lambda p: str(p["pane_id"])):
        pane_id = str(pane["pane_id"])
        where = f"pane {pane_id} ({pane.get('session_name')})"
        found = by_id.get(pane_id)
        if found is None:
            problems.append(f"{where}: not in {dst} list_panes")
            continue
        for name in ROLLBACK_PANE_FIELDS:
            if found.get(name) != pane.get(name):
                problems.append(
                    f"{where}: {name} {src}={pane.get(name)!r} {dst}={found.get(name)!r}"
                )
    numbers = {"expected_panes": len(expected), "problems": len(problems)}
    if problems:
        return _judgement(
            Verdict.FAIL,
            f"{dst} list_panes differs from what {src} served at the rollback in "
            f"{len(problems)} place(s): " + "; ".join(problems),
            **numbers,
        )
    if not expected:
        return _judgement(
            Verdict.INCONCLUSIVE,
            f"{src} manages no pane in any named tmux session: no expected data to compare",
            **numbers,
        )
    return _judgement(
        Verdict.PASS,
        f"{dst} list_panes serves all {len(expected)} panes {src} managed, same "
        f"{', '.join(ROLLBACK_PANE_FIELDS)}",
        **numbers,
    )
