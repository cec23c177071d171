"""Judgements on the fleet as the migration routes it: the runtime selector for each phase, which
daemon serves the tmux and agent sessions (none left on v4, every session served, the canary
sessions present and in use), and the v4 binary archived, not deleted.
"""

from __future__ import annotations

from collections.abc import Collection
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime
from datetime import timedelta

from pytest_canarygate.agtmux import managed
from pytest_canarygate.agtmux import sessions_by_name
from pytest_canarygate.catalog import PHASES
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.judgement.core import Judgement
from pytest_canarygate.judgement.core import _aware
from pytest_canarygate.judgement.core import _judgement
from pytest_canarygate.judgement.core import format_duration
from pytest_canarygate.judgement.core import format_time
from pytest_canarygate.providers.records import ArchiveManifest
from pytest_canarygate.providers.records import RuntimeSelector
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
