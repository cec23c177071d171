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
from pytest_canarygate.agtmux.protocol import Difference
from pytest_canarygate.agtmux.protocol import agent_session_keys
from pytest_canarygate.agtmux.protocol import failure_message
from pytest_canarygate.agtmux.protocol import managed
from pytest_canarygate.agtmux.protocol import sessions_by_name
from pytest_canarygate.agtmux.records import ArchiveManifest
from pytest_canarygate.agtmux.records import RuntimeSelector
from pytest_canarygate.agtmux.records import SessionRoute
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


# --- sessions as the selector routes them (phase 3) ----------------------------------------
#
# Every daemon watches the same tmux server and shows every tmux session (daemon facts 11), so
# which daemon serves a session is what the selector routes, never what a daemon shows.


def _routes_and_switch(
    selector: RuntimeSelector, phase: str
) -> tuple[tuple[SessionRoute, ...], datetime] | Judgement:
    """The selector's session routes and its switch, or INCONCLUSIVE when it does not say how
    it routes sessions or when it switched."""
    if selector.sessions is None:
        message = (
            "the runtime selector does not say how it routes each session (no sessions): which "
            "daemon serves which session is not shown (every daemon shows every tmux session)"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, routes=None)
    if selector.changed_at is None:
        message = (
            f"{phase} start unknown: the runtime selector does not say when it last changed (no "
            "changed_at_ms), so which sessions started after the switch is not shown"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, routes=len(selector.sessions))
    return selector.sessions, selector.changed_at


def _describe_routes(routes: Sequence[SessionRoute]) -> str:
    parts = [
        f"{r.session_name} (started {format_time(r.started_at)}"
        + (f", routed {format_time(r.routed_at)})" if r.routed_at != r.started_at else ")")
        for r in routes[:5]
    ]
    if len(routes) > 5:
        parts.append(f"and {len(routes) - 5} more")
    return ", ".join(parts)


def _new_on_v4(routes: Sequence[SessionRoute], switch: datetime) -> list[SessionRoute]:
    return [r for r in routes if r.daemon == "v4" and r.started_at >= switch]


def routed_counts(selector: RuntimeSelector, *, phase: str = "gradual") -> Judgement:
    """Phase 3 "track v4 vs v5 session counts daily": the sessions the selector routes to each
    daemon, and how many started since the switch, counted every run (the evidence keeps
    them); a session routed to v4 that started after the switch FAILs (new sessions go to v5)."""
    known = _routes_and_switch(selector, phase)
    if isinstance(known, Judgement):
        return known
    routes, switch = known
    by_daemon = {
        name: sorted(r.session_name for r in routes if r.daemon == name) for name in ("v4", "v5")
    }
    new = [r for r in routes if r.started_at >= switch]
    total = len(routes)
    numbers: dict[str, object] = {
        "switch": switch.isoformat(),
        "v4": len(by_daemon["v4"]),
        "v5": len(by_daemon["v5"]),
        "v4_sessions": by_daemon["v4"],
        "v5_sessions": by_daemon["v5"],
        "started_since_switch": len(new),
        "v5_share": None if not total else round(len(by_daemon["v5"]) / total, 3),
    }
    counts = (
        f"v4 {len(by_daemon['v4'])} ({', '.join(by_daemon['v4']) or 'none'}), "
        f"v5 {len(by_daemon['v5'])} ({', '.join(by_daemon['v5']) or 'none'}); {len(new)} "
        f"started since the switch to v5 at {format_time(switch)}"
    )
    wrong = _new_on_v4(routes, switch)
    if wrong:
        message = (
            f"{len(wrong)} sessions started after the switch to v5 at {format_time(switch)} are "
            f"routed to v4: {_describe_routes(wrong)} (sessions routed: {counts})"
        )
        return _judgement(Verdict.FAIL, message, wrong, **numbers)
    return _judgement(Verdict.PASS, f"sessions routed: {counts}", **numbers)


def new_sessions_on_v5(selector: RuntimeSelector, *, phase: str = "gradual") -> Judgement:
    """Phase 3 exit "all new sessions running on v5": no session the selector routes to v4
    started at or after its switch (the phase's start)."""
    known = _routes_and_switch(selector, phase)
    if isinstance(known, Judgement):
        return known
    routes, switch = known
    new = [r for r in routes if r.started_at >= switch]
    wrong = _new_on_v4(routes, switch)
    numbers = {"switch": switch.isoformat(), "started_since_switch": len(new), "on_v4": len(wrong)}
    if wrong:
        message = (
            f"{len(wrong)} of the {len(new)} sessions started since the switch to v5 at "
            f"{format_time(switch)} are routed to v4: {_describe_routes(wrong)}"
        )
        return _judgement(Verdict.FAIL, message, wrong, **numbers)
    message = (
        f"all {len(new)} sessions started since the switch to v5 at {format_time(switch)} are "
        "routed to v5"
    )
    return _judgement(Verdict.PASS, message, **numbers)


def v4_sessions_continue(
    selector: RuntimeSelector,
    v4_sessions: Collection[str] | None,
    *,
    phase: str = "gradual",
) -> Judgement:
    """Phase 3 "existing v4 sessions continue on v4 until restart": no session that started
    before the switch was moved off v4 since (routed to v5 at or after the switch, later than
    its start: without a restart), and every session routed to v4 is among the tmux sessions
    v4 shows (``v4_sessions``; None when v4 is not ready, so its answer proves nothing)."""
    known = _routes_and_switch(selector, phase)
    if isinstance(known, Judgement):
        return known
    routes, switch = known
    on_v4 = sorted((r for r in routes if r.daemon == "v4"), key=lambda r: r.session_name)
    moved = [
        r
        for r in routes
        if r.daemon == "v5"
        and r.started_at < switch
        and r.routed_at >= switch
        and r.routed_at > r.started_at
    ]
    numbers: dict[str, object] = {
        "switch": switch.isoformat(),
        "on_v4": [r.session_name for r in on_v4],
        "moved_without_restart": [r.session_name for r in moved],
    }
    if moved:
        message = (
            f"{len(moved)} sessions started before the switch to v5 at {format_time(switch)} "
            f"were moved to v5 without a restart: {_describe_routes(moved)}; existing v4 "
            "sessions continue on v4 until restart"
        )
        return _judgement(Verdict.FAIL, message, moved, **numbers)
    if v4_sessions is not None:
        unseen = [r for r in on_v4 if r.session_name not in v4_sessions]
        if unseen:
            message = (
                f"{len(unseen)} sessions routed to v4 are not among the tmux sessions v4 shows: "
                f"{_describe_routes(unseen)}; v4 does not serve them"
            )
            return _judgement(Verdict.FAIL, message, unseen, **numbers)
    held = f"{len(on_v4)} sessions ({_describe_routes(on_v4)})" if on_v4 else "no session"
    message = (
        f"v4 keeps {held} routed to it; none that started before the switch to v5 at "
        f"{format_time(switch)} was moved without a restart"
    )
    return _judgement(Verdict.PASS, message, **numbers)


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


# --- v4 / v5 parity over two readings (P1-S4a, P1-S4b, P1-S4c, P1-X1) --------------------


def active_session_keys(live_panes: Iterable[Pane], changes: Iterable[Change]) -> set[str]:
    """The agent sessions in use: those bound (:func:`agent_session_keys`) to a managed pane
    that tmux still lists (a string ``session_name``). ``list_sessions`` never drops a session
    (daemon facts 2.2), so one bound to no such pane (its pane left tmux, or it never had one)
    is kept only as history."""
    live = [dict(p) for p in live_panes if isinstance(p.get("session_name"), str)]
    return agent_session_keys(live, changes)


def split_history(
    sessions: Mapping[str, Mapping[str, object]], active: Collection[str]
) -> tuple[dict[str, Mapping[str, object]], list[str]]:
    """``sessions`` (by key) split into the active ones and the keys kept only as history."""
    kept = {key: s for key, s in sessions.items() if key in active}
    return kept, sorted(key for key in sessions if key not in active)


def parity_in_readings(
    readings: Sequence[Sequence[Difference]],
    *,
    what: str,
    compared: str,
    history: Mapping[str, Sequence[str]] | None = None,
) -> Judgement:
    """v4 and v5 agree on ``what`` in every reading: a difference (the same record and field)
    found in every reading FAILs; one found in some readings only is flapping, so whether the
    projections differ is not shown (INCONCLUSIVE); none PASSes. ``compared`` says what was
    compared; ``history``: per daemon, the sessions it keeps only as history, not compared
    but counted."""
    if len(readings) < 2:
        raise ValueError("parity is judged over at least two readings")
    seen = [{(d.where, d.field): d for d in found} for found in readings]
    everywhere = set.intersection(*(set(found) for found in seen))
    persistent = [d for key, d in seen[-1].items() if key in everywhere]
    flapping = [
        f"reading {index}: {d}"
        for index, found in enumerate(seen, start=1)
        for key, d in found.items()
        if key not in everywhere
    ]
    history = history or {}
    counted = sum(len(keys) for keys in history.values())
    kept = (
        f"; {counted} sessions kept only as history not compared ("
        + ", ".join(f"{len(keys)} on {name}" for name, keys in history.items())
        + ")"
        if counted
        else ""
    )
    numbers = {
        "readings": len(readings),
        "differences_in_every_reading": len(persistent),
        "differences_in_some_readings": len(flapping),
        "history_only_sessions": {name: list(keys) for name, keys in history.items()},
    }
    n = len(readings)
    if persistent:
        also = (
            [f"also {len(flapping)} differences in only some readings (flapping)", *flapping]
            if flapping
            else []
        )
        headline = f"{what} differs in all {n} readings"
        return _judgement(
            Verdict.FAIL, failure_message(headline, [*persistent, *also]), persistent, **numbers
        )
    if flapping:
        headline = (
            f"{what} differs in only some of {n} readings (flapping): whether v4 and v5 "
            "disagree is not shown"
        )
        return _judgement(Verdict.INCONCLUSIVE, failure_message(headline, flapping), **numbers)
    return _judgement(
        Verdict.PASS, f"{what}: v4 and v5 agree in all {n} readings ({compared}{kept})", **numbers
    )


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
