"""Judgements on what happened in a window of history: whether the history covers the window at
all, events of a kind in it, supervisor HoldDowns and whether the supervisor recovered from one,
alerts at or above a severity and Escalates that persist or stay unresolved, and whether supervisor
restart counts regressed. No violation found in a history that does not cover the window is
INCONCLUSIVE, the message giving the span. Violations are looked for up to the later of ``now``
and the history's end: one stamped after the observation started but inside the history counts.
"""

from __future__ import annotations

from collections.abc import Collection
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime
from datetime import timedelta

from pytest_canarygate.agtmux.judgement.core import Coverage
from pytest_canarygate.agtmux.judgement.core import Covered
from pytest_canarygate.agtmux.judgement.core import Judgement
from pytest_canarygate.agtmux.judgement.core import TimedEvent
from pytest_canarygate.agtmux.judgement.core import _aware
from pytest_canarygate.agtmux.judgement.core import _judgement
from pytest_canarygate.agtmux.judgement.core import format_duration
from pytest_canarygate.agtmux.judgement.core import format_time
from pytest_canarygate.agtmux.judgement.supervisor import RUNBOOK_RESTART_POLICY
from pytest_canarygate.agtmux.protocol import Change
from pytest_canarygate.agtmux.protocol import Record
from pytest_canarygate.agtmux.protocol import agent_session_keys
from pytest_canarygate.agtmux.protocol import managed
from pytest_canarygate.agtmux.protocol import sessions_by_name
from pytest_canarygate.agtmux.records import AlertEntry
from pytest_canarygate.agtmux.records import LogEvent
from pytest_canarygate.agtmux.records import RuntimeSelector
from pytest_canarygate.agtmux.records import Severity
from pytest_canarygate.agtmux.records import SupervisorEvent
from pytest_canarygate.agtmux.records import SupervisorStatus
from pytest_canarygate.agtmux.records import ms_to_datetime
from pytest_canarygate.verdicts import Verdict

DEFAULT_MAX_LAG = timedelta(minutes=5)
"""How far before ``now`` a history may end and still count as reaching ``now``."""

HOLD_DOWN_KINDS = frozenset({"hold_down"})
"""Supervisor event and daemon log kinds that mean "entered HoldDown"."""
RECOVERY_KINDS = frozenset({"success", "reconnected"})
"""Kinds that mean the supervised process came back."""
RESTART_KINDS = frozenset({"restart", "process_exited"})
"""Kinds counted as one restart (a scheduled restart; a reconnect attempt in the log)."""


# --- windows -----------------------------------------------------------------------------


def window_coverage(
    window: timedelta,
    now: datetime,
    covers_from: datetime | None,
    covers_to: datetime | None,
    *,
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Coverage:
    """Does the history ``covers_from..covers_to`` cover the window ``now - window..now``?

    It must start at or before the window start and end no more than ``max_lag`` before now.
    """
    now = _aware(now, "now")
    start = now - window
    required = format_duration(window)
    numbers: dict[str, object] = {
        "window_s": window.total_seconds(),
        "window_start": start.isoformat(),
        "now": now.isoformat(),
        "covers_from": covers_from.isoformat() if covers_from else None,
        "covers_to": covers_to.isoformat() if covers_to else None,
    }
    if covers_from is None or covers_to is None:
        message = (
            f"the source does not say from when its history is complete; the required "
            f"{required} window is {format_time(start)}..{format_time(now)}"
        )
        return Coverage(
            verdict=Verdict.INCONCLUSIVE, message=message, numbers=numbers, covered=False, span=""
        )
    covers_from = _aware(covers_from, "covers_from")
    covers_to = _aware(covers_to, "covers_to")
    overlap = max(timedelta(0), min(covers_to, now) - max(covers_from, start))
    numbers["covered_s"] = overlap.total_seconds()
    span = f"{format_time(covers_from)}..{format_time(covers_to)}"
    covered = covers_from <= start and covers_to >= now - max_lag
    if covered:
        message = f"history covers {span}, the whole {required} window"
    else:
        message = (
            f"history covers {span} ({format_duration(overlap)}) of the required {required} window"
        )
        if covers_from > start:
            message += f"; it starts after the window start {format_time(start)}"
        if covers_to < now - max_lag:
            message += (
                f"; it ends {format_duration(now - covers_to)} before now ({format_time(now)})"
            )
    return Coverage(
        verdict=Verdict.PASS if covered else Verdict.INCONCLUSIVE,
        message=message,
        numbers=numbers,
        covered=covered,
        span=span,
    )


def window_end(now: datetime, coverage: Covered | None) -> datetime:
    """Where a search for violations ends: the later of ``now`` and the end of the history (a
    record stamped after the observation started, inside the history, is still a finding)."""
    now = _aware(now, "now")
    end = None if coverage is None else coverage.covers_to
    return now if end is None else max(now, _aware(end, "covers_to"))


def coverage_of(
    coverage: Covered | None, window: timedelta, now: datetime, max_lag: timedelta
) -> Coverage:
    """How much of ``window`` before ``now`` a history's coverage (None: unknown) shows."""
    if coverage is None:
        return window_coverage(window, now, None, None, max_lag=max_lag)
    return window_coverage(window, now, coverage.covers_from, coverage.covers_to, max_lag=max_lag)


def _in_window(
    found: Sequence[object],
    describe: str,
    what: str,
    window: timedelta,
    now: datetime,
    coverage: Covered | None,
    max_lag: timedelta,
) -> Judgement:
    cov = coverage_of(coverage, window, now, max_lag)
    numbers = {**cov.numbers, "found": len(found)}
    required = format_duration(window)
    if found:
        return _judgement(
            Verdict.FAIL,
            f"{len(found)} {what} in the last {required}: {describe}",
            found,
            **numbers,
        )
    if not cov.covered:
        return _judgement(Verdict.INCONCLUSIVE, f"no {what} seen, but {cov.message}", **numbers)
    return _judgement(Verdict.PASS, f"no {what} in the last {required} ({cov.message})", **numbers)


def count_events(
    events: Iterable[TimedEvent], kinds: Collection[str], start: datetime, end: datetime
) -> int:
    """How many events of ``kinds`` fall in ``start..end`` (both inclusive)."""
    start, end = _aware(start, "start"), _aware(end, "end")
    return sum(1 for e in events if e.kind in kinds and start <= e.at <= end)


def no_events_in_window(
    events: Iterable[TimedEvent],
    kinds: Collection[str],
    window: timedelta,
    now: datetime,
    coverage: Covered | None,
    *,
    what: str,
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Judgement:
    """FAIL if an event of ``kinds`` happened in the window (up to :func:`window_end`),
    INCONCLUSIVE if none did but the history does not cover the window, PASS otherwise.
    ``what`` names the events (plural)."""
    now = _aware(now, "now")
    start, end = now - window, window_end(now, coverage)
    found = [e for e in events if e.kind in kinds and start <= e.at <= end]
    describe = ", ".join(f"{e.kind} at {format_time(e.at)}" for e in found[:5])
    if len(found) > 5:
        describe += f" and {len(found) - 5} more"
    return _in_window(found, describe, what, window, now, coverage, max_lag)


# --- hold-downs --------------------------------------------------------------------------


def hold_downs_in_window(
    events: Iterable[TimedEvent],
    window: timedelta,
    now: datetime,
    coverage: Covered | None,
    *,
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Judgement:
    """Zero supervisor HoldDown events in the window (supervisor events or daemon log)."""
    return no_events_in_window(
        events,
        HOLD_DOWN_KINDS,
        window,
        now,
        coverage,
        what="supervisor HoldDown events",
        max_lag=max_lag,
    )


def hold_down_not_recovered(
    events: Iterable[TimedEvent],
    window: timedelta,
    now: datetime,
    coverage: Covered | None,
    *,
    grace: timedelta = timedelta(minutes=1),
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Judgement:
    """Rollback signal "supervisor enters HoldDown and doesn't recover": FAIL when the latest
    hold-down in the window ended more than ``grace`` ago, and the history reaches past that,
    with no recovery after it. A recovery passes only on a history that reaches now (a later
    hold-down would not show otherwise); no hold-down passes only on a history covering the
    window."""
    now = _aware(now, "now")
    end = window_end(now, coverage)
    ordered = sorted((e for e in events if e.at <= end), key=lambda e: e.at)
    holds = [e for e in ordered if e.kind in HOLD_DOWN_KINDS and e.at >= now - window]
    cov = coverage_of(coverage, window, now, max_lag)
    if not holds:
        verdict = Verdict.PASS if cov.covered else Verdict.INCONCLUSIVE
        return _judgement(verdict, f"no HoldDown in the window ({cov.message})", **cov.numbers)
    last = holds[-1]
    until = _hold_down_until(last)
    numbers = {**cov.numbers, "hold_down_at": last.at.isoformat(), "until": until.isoformat()}
    recovered = [e for e in ordered if e.kind in RECOVERY_KINDS and e.at >= last.at]
    covers_to = None if coverage is None else coverage.covers_to
    if recovered:
        message = f"HoldDown at {format_time(last.at)} recovered at {format_time(recovered[0].at)}"
        if covers_to is None or covers_to < now - max_lag:
            ends = (
                "does not say where it ends"
                if covers_to is None
                else (
                    f"ends {format_time(covers_to)}, {format_duration(now - covers_to)} before now"
                )
            )
            message += f", but the history {ends}: a later HoldDown would not show"
            return _judgement(Verdict.INCONCLUSIVE, message, (last, recovered[0]), **numbers)
        return _judgement(Verdict.PASS, message, (last, recovered[0]), **numbers)
    if now < until + grace:
        message = (
            f"in HoldDown since {format_time(last.at)} until {format_time(until)}; "
            "recovery not due yet"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, (last,), **numbers)
    if covers_to is None or covers_to < until + grace:
        ends = (
            "does not say where it ends"
            if covers_to is None
            else (f"ends {format_time(covers_to)}")
        )
        message = (
            f"HoldDown at {format_time(last.at)} until {format_time(until)}: no recovery seen, "
            f"but the history {ends}, before a recovery was due"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, (last,), **numbers)
    message = (
        f"HoldDown at {format_time(last.at)} ended {format_time(until)} and no recovery "
        f"followed in {format_duration(min(now, covers_to) - until)}: rollback immediately"
    )
    return _judgement(Verdict.FAIL, message, (last,), **numbers)


def hold_down_state(
    status: SupervisorStatus,
    now: datetime,
    *,
    grace: timedelta = timedelta(minutes=1),
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Judgement:
    """The supervisor's current state against the same signal: still HoldDown more than
    ``grace`` after ``until_ms`` (at the status's ``as_of_ms``) means it did not recover
    (HoldDown is sticky until the next outcome is recorded, daemon facts 5.3); HoldDown not yet
    over is INCONCLUSIVE, and so is any other state on a status older than ``max_lag``."""
    now = _aware(now, "now")
    state = status.state
    as_of = ms_to_datetime(status.as_of_ms)
    numbers = {"state": state.name, "until_ms": state.until_ms, "as_of_ms": status.as_of_ms}
    stale = as_of < now - max_lag
    if state.name == "HoldDown":
        until = ms_to_datetime(state.until_ms or 0)
        if as_of >= until + grace:
            message = (
                f"supervisor still in HoldDown {format_duration(as_of - until)} after it ended at "
                f"{format_time(until)} (status as of {format_time(as_of)}): it did not recover, "
                "rollback immediately"
            )
            return _judgement(Verdict.FAIL, message, **numbers)
        message = f"supervisor in HoldDown until {format_time(until)}; recovery not due yet"
        if stale:
            message = (
                f"supervisor in HoldDown until {format_time(until)} as of "
                f"{format_time(as_of)}, {format_duration(now - as_of)} before now: its state "
                "since is not shown"
            )
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    if stale:
        message = (
            f"supervisor state {state.name} as of {format_time(as_of)}, "
            f"{format_duration(now - as_of)} before now (allowed {format_duration(max_lag)}): "
            "its current state is not shown"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    return _judgement(
        Verdict.PASS,
        f"supervisor state {state.name} as of {format_time(as_of)}, not HoldDown",
        **numbers,
    )


def hold_down_proxy(health_result: object, *, who: str = "v5") -> Judgement:
    """The supervisor's state from the proxy the daemon facts name (5.4, 12): codex_appserver
    "healthy" in ``list_source_health`` means the supervised codex app-server client was alive
    at the last tick, so the supervisor is not holding it down (PASS); "degraded" or "down"
    means the client is down now (a hold-down, a restart in progress, or no codex at all):
    INCONCLUSIVE; an answer that does not show it is UNOBSERVABLE."""
    statuses = [
        entry[1].get("status")
        for entry in (health_result if isinstance(health_result, list) else ())
        if isinstance(entry, list | tuple)
        and len(entry) == 2
        and entry[0] == "codex_appserver"
        and isinstance(entry[1], Mapping)
    ]
    if len(statuses) != 1 or statuses[0] not in ("healthy", "degraded", "down"):
        return _judgement(
            Verdict.UNOBSERVABLE,
            f"{who} list_source_health does not show codex_appserver once with a status: "
            f"{health_result!r:.120}",
        )
    status = statuses[0]
    if status == "healthy":
        return _judgement(
            Verdict.PASS,
            f"{who} codex_appserver healthy: the supervised codex app-server client is alive, "
            "not held down",
            codex_appserver=status,
        )
    message = (
        f"{who} codex_appserver {status}: the codex app-server client is down now (a hold-down, "
        "a restart in progress, or no codex), which alone does not tell"
    )
    return _judgement(Verdict.INCONCLUSIVE, message, codex_appserver=status)


def _hold_down_until(event: TimedEvent) -> datetime:
    if isinstance(event, SupervisorEvent) and event.until_ms is not None:
        return ms_to_datetime(event.until_ms)
    seconds = event.values.get("seconds") if isinstance(event, LogEvent) else None
    if isinstance(seconds, int):
        return event.at + timedelta(seconds=seconds)
    return event.at + timedelta(milliseconds=RUNBOOK_RESTART_POLICY.holddown_ms)


# --- alerts ------------------------------------------------------------------------------


def _open_during(entry: AlertEntry, start: datetime, end: datetime) -> bool:
    resolved = entry.resolved_at
    return entry.created_at <= end and (resolved is None or resolved >= start)


def _describe_alerts(entries: Sequence[AlertEntry]) -> str:
    parts = []
    for e in entries[:5]:
        state = "open" if e.resolved_at is None else f"resolved {format_time(e.resolved_at)}"
        parts.append(
            f"{e.alert_id} {e.severity.label} from {e.source} "
            f"at {format_time(e.created_at)} ({state}): {e.message}"
        )
    if len(entries) > 5:
        parts.append(f"and {len(entries) - 5} more")
    return "; ".join(parts)


def alerts_at_or_above(
    entries: Iterable[AlertEntry],
    min_severity: Severity | str,
    window: timedelta,
    now: datetime,
    coverage: Covered | None,
    *,
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Judgement:
    """No alert of ``min_severity`` or above created or still open inside the window (up to
    :func:`window_end`)."""
    floor = (
        min_severity if isinstance(min_severity, Severity) else Severity.from_label(min_severity)
    )
    now = _aware(now, "now")
    end = window_end(now, coverage)
    found = [e for e in entries if e.severity >= floor and _open_during(e, now - window, end)]
    what = f"alerts at or above {floor.label}"
    return _in_window(found, _describe_alerts(found), what, window, now, coverage, max_lag)


LATENCY_ALERT_SOURCES = ("latency_window",)
"""Alert sources of the latency SLO (daemon facts 6.2); "supervisor" and "source_health" alerts
belong to the gates of their own items."""


def alerts_from_sources(
    entries: Iterable[AlertEntry],
    min_severity: Severity,
    sources: Collection[str],
    window: timedelta,
    now: datetime,
    coverage: Covered | None,
    *,
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Judgement:
    """No alert from one of ``sources`` of ``min_severity`` or above created or still open
    inside the window (up to :func:`window_end`); alerts from other sources are not looked at
    (their count is kept in the numbers)."""
    now = _aware(now, "now")
    end = window_end(now, coverage)
    entries = list(entries)
    mine = [e for e in entries if e.source in sources]
    found = [e for e in mine if e.severity >= min_severity and _open_during(e, now - window, end)]
    what = f"{'/'.join(sorted(sources))} alerts at or above {min_severity.label}"
    judged = _in_window(found, _describe_alerts(found), what, window, now, coverage, max_lag)
    numbers = {**judged.numbers, "other_sources": len(entries) - len(mine)}
    return _judgement(judged.verdict, judged.message, judged.findings, **numbers)


def escalate_persisting(
    entries: Iterable[AlertEntry],
    longer_than: timedelta = timedelta(minutes=5),
    *,
    now: datetime,
    window: timedelta | None = None,
    until: datetime | None = None,
) -> Judgement:
    """Rollback signal "Escalate persists > 5 min": an Escalate open (until resolved, or until
    the later of ``now`` and ``until``, the ledger's end) strictly longer than ``longer_than``.
    ``window`` limits it to entries open inside it."""
    now = _aware(now, "now")
    end = now if until is None else max(now, _aware(until, "until"))
    escalates = [
        e
        for e in entries
        if e.severity is Severity.ESCALATE
        and (window is None or _open_during(e, now - window, end))
    ]
    persisting = [e for e in escalates if (e.resolved_at or end) - e.created_at > longer_than]
    limit = format_duration(longer_than)
    if persisting:
        message = (
            f"{len(persisting)} Escalate alerts persisted longer than {limit}: "
            f"{_describe_alerts(persisting)}"
        )
        return _judgement(Verdict.FAIL, message, persisting, found=len(persisting))
    still_open = [e for e in escalates if e.resolved_at is None]
    message = f"no Escalate alert persisted longer than {limit}"
    if still_open:
        message += f" ({len(still_open)} open, younger than that: {_describe_alerts(still_open)})"
    return _judgement(Verdict.PASS, message, still_open, found=0, open=len(still_open))


def unresolved_escalates_in_window(
    entries: Iterable[AlertEntry],
    window: timedelta,
    now: datetime,
    coverage: Covered | None,
    *,
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Judgement:
    """ "No unresolved Escalate alerts in 7 days": no Escalate left unresolved at any moment of
    the window (up to :func:`window_end`), even one resolved since; one resolved before the
    window began does not count. Judged on a ledger that covers the window (a restart that lost
    the ledger is INCONCLUSIVE)."""
    now = _aware(now, "now")
    end = window_end(now, coverage)
    found = [
        e for e in entries if e.severity is Severity.ESCALATE and _open_during(e, now - window, end)
    ]
    what = "Escalate alerts left unresolved"
    return _in_window(found, _describe_alerts(found), what, window, now, coverage, max_lag)


# --- cursor FullResync on the canary -----------------------------------------------------


def selector_serves_canary(selector: RuntimeSelector) -> bool:
    """The runtime selector routes canary sessions to v5 (some named, or v5 the default)."""
    return selector.v5_enabled and (
        selector.default_daemon == "v5" or bool(selector.v5_canary_sessions)
    )


def on_canary(at: datetime, selector: RuntimeSelector) -> bool | None:
    """Whether v5 served canary sessions at ``at``, as far as the selector shows: since its last
    change it routes as it does now; before it, a selector now serving the canary may have
    served none yet (None: not shown), and one now serving none served the canary until it was
    switched back (the runbook's rollback). Without a change time nothing is shown."""
    changed = selector.changed_at
    if changed is None:
        return None
    serving = selector_serves_canary(selector)
    if at >= changed:
        return serving
    return None if serving else True


def full_resyncs_on_canary(
    events: Iterable[TimedEvent],
    selector: RuntimeSelector,
    window: timedelta,
    now: datetime,
    coverage: Covered | None,
    *,
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Judgement:
    """Rollback signal "cursor FullResync triggered on canary": FAIL for a ``full_resync`` in
    the look-back ``window`` (up to :func:`window_end`) while v5 served canary sessions
    (:func:`on_canary`); one there whose routing the selector does not show is INCONCLUSIVE;
    one while v5 served no session does not count. None on a history that does not cover the
    look-back is INCONCLUSIVE."""
    now = _aware(now, "now")
    start, end = now - window, window_end(now, coverage)
    found = [e for e in events if e.kind == "full_resync" and start <= e.at <= end]
    on = [e for e in found if on_canary(e.at, selector) is True]
    unknown = [e for e in found if on_canary(e.at, selector) is None]
    off = [e for e in found if on_canary(e.at, selector) is False]
    cov = coverage_of(coverage, window, now, max_lag)
    span = format_duration(window)
    changed = selector.changed_at
    since = "an unknown time" if changed is None else format_time(changed)
    numbers = {**cov.numbers, "on_canary": len(on), "not_shown": len(unknown), "off": len(off)}
    if on:
        message = (
            f"{len(on)} cursor FullResyncs on the canary in the last {span}, at "
            + ", ".join(format_time(e.at) for e in on[:5])
            + f" (the runtime selector routes as now since {since}): investigate, consider "
            "rollback"
        )
        return _judgement(Verdict.FAIL, message, on[:20], **numbers)
    if unknown:
        message = (
            f"cursor FullResync at {format_time(unknown[-1].at)}, before the runtime "
            f"selector's last change at {since}: whether v5 served a canary session then is "
            "not shown"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, unknown[:20], **numbers)
    ignored = (
        f"; {len(off)} while v5 served no session (the selector moved to v4 at {since})"
        if off
        else ""
    )
    if not cov.covered:
        message = f"no cursor FullResync seen on the canary{ignored}, but {cov.message}"
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    message = f"no cursor FullResync on the canary in the last {span}{ignored} ({cov.message})"
    return _judgement(Verdict.PASS, message, **numbers)


# --- canary usage ------------------------------------------------------------------------


def canary_sessions_in_use(
    selector: RuntimeSelector,
    panes: Sequence[Record],
    changes: Iterable[Change],
    window: timedelta,
    *,
    now: datetime,
    who: str = "v5",
) -> Judgement:
    """ "Canary duration with active usage", for each canary session the selector names: a
    ``state_changed`` entry of one of its managed panes, or of the agent session bound to one,
    stamped inside ``window``. Managed panes are never removed (daemon facts 2.1), so their
    presence proves no use. Any idle session (or none named) is INCONCLUSIVE, naming each idle
    session and when it was last used."""
    now = _aware(now, "now")
    start = now - window
    span = format_duration(window)
    changes = list(changes)
    tmux_sessions = sessions_by_name(panes)
    used: dict[str, list[Change]] = {}
    idle: list[str] = []
    for name in selector.v5_canary_sessions:
        session_panes = [dict(p) for p in managed(tmux_sessions.get(name, ()))]
        pane_ids = {str(p["pane_id"]) for p in session_panes}
        keys = agent_session_keys(session_panes, changes)
        mine = [
            c for c in changes if c.pane_id in pane_ids or (not c.pane_id and c.session_key in keys)
        ]
        recent = [c for c in mine if c.at >= start]
        if recent:
            used[name] = recent
            continue
        if not session_panes:
            idle.append(f"{name} (no managed pane on {who})")
            continue
        latest = max((c.at for c in mine), default=None)
        last = "never" if latest is None else f"last at {format_time(latest)}"
        idle.append(f"{name} ({len(session_panes)} managed panes, {last})")
    numbers = {
        "canary_sessions": list(selector.v5_canary_sessions),
        "changes_in_window": {name: len(found) for name, found in used.items()},
        "idle": idle,
        "window_s": window.total_seconds(),
    }
    if not selector.v5_canary_sessions:
        return _judgement(
            Verdict.INCONCLUSIVE,
            "the selector names no canary session: no active usage to show",
            **numbers,
        )
    if idle:
        message = (
            f"{len(idle)} of {len(selector.v5_canary_sessions)} canary sessions idle on {who}: "
            f"no state_changed entry for them since {format_time(start)} (the last {span}): "
            + "; ".join(idle)
        )
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    shown = ", ".join(
        f"{name} {len(found)} (latest {format_time(max(c.at for c in found))})"
        for name, found in used.items()
    )
    message = f"every canary session in use on {who} in the last {span}: state changes {shown}"
    return _judgement(Verdict.PASS, message, [f[-1] for f in used.values()], **numbers)


# --- supervisor restarts -----------------------------------------------------------------


DEFAULT_RESTART_RATE_TOLERANCE_PCT = 25.0
"""How much faster than the baseline supervisor restarts may come in a phase (percent)."""


def restart_rate_regression(
    events: Iterable[TimedEvent],
    now: datetime,
    coverage: Covered | None,
    *,
    phase_start: datetime | None,
    phase: str = "gradual",
    tolerance_pct: float = DEFAULT_RESTART_RATE_TOLERANCE_PCT,
    max_lag: timedelta = DEFAULT_MAX_LAG,
    read_from: datetime | None = None,
) -> Judgement:
    """No regression in supervisor restart counts: the restart rate since ``phase_start`` against
    a baseline of equal length just before it. A regression is more restarts in the phase than
    the baseline's plus ``tolerance_pct`` percent plus one (a steady cadence cut by the phase
    start may put one more restart on either side). The history must cover the baseline and
    reach now (it counts only from ``read_from`` on, where the reading began), else
    INCONCLUSIVE with the span; an increase over a covered baseline FAILs even on a history
    that stops short of now, as later restarts could only add to it."""
    now = _aware(now, "now")
    if phase_start is None:
        message = (
            f"{phase} start unknown: the runtime selector does not say when it last changed "
            "(no changed_at_ms), so no baseline before the phase can be chosen"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, phase_start=None)
    phase_start = _aware(phase_start, "phase_start")
    length = now - phase_start
    if length <= timedelta(0):
        message = (
            f"{phase} start {format_time(phase_start)} is not before now ({format_time(now)}): "
            "no phase to compare yet"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, phase_start=phase_start.isoformat())
    events = list(events)
    baseline_start = phase_start - length
    tick = timedelta(microseconds=1)
    in_phase = count_events(events, RESTART_KINDS, phase_start, window_end(now, coverage))
    in_baseline = count_events(events, RESTART_KINDS, baseline_start, phase_start - tick)
    allowed = in_baseline * (1 + tolerance_pct / 100) + 1
    days = length / timedelta(days=1)
    span = format_duration(length)
    covers_from = None if coverage is None else coverage.covers_from
    if covers_from is not None and read_from is not None:
        covers_from = max(_aware(covers_from, "covers_from"), _aware(read_from, "read_from"))
    cov = window_coverage(
        2 * length,
        now,
        covers_from,
        None if coverage is None else coverage.covers_to,
        max_lag=max_lag,
    )
    numbers = {
        **cov.numbers,
        "phase_start": phase_start.isoformat(),
        "baseline_start": baseline_start.isoformat(),
        "span_s": length.total_seconds(),
        "phase_restarts": in_phase,
        "baseline_restarts": in_baseline,
        "phase_per_day": round(in_phase / days, 3),
        "baseline_per_day": round(in_baseline / days, 3),
        "tolerance_pct": tolerance_pct,
        "allowed": round(allowed, 3),
    }
    counts = (
        f"{in_phase} in the {phase} phase ({span} since {format_time(phase_start)}, "
        f"{in_phase / days:.2f}/day) vs {in_baseline} in the {span} before it "
        f"({format_time(baseline_start)}..{format_time(phase_start)}, {in_baseline / days:.2f}/day)"
    )
    limit = f"at most {allowed:g} allowed: the baseline +{tolerance_pct:g}% +1"
    baseline_covered = covers_from is not None and covers_from <= baseline_start
    if in_phase > allowed and baseline_covered:
        return _judgement(
            Verdict.FAIL, f"supervisor restarts regressed: {counts}; {limit}", **numbers
        )
    if not cov.covered:
        message = f"restart rate not comparable ({counts}): {cov.message}"
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    return _judgement(
        Verdict.PASS, f"supervisor restarts not regressed: {counts}; {limit}", **numbers
    )
