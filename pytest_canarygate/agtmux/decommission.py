"""Cutover after the decommission (runbook Phase 4): what the observation shows of v4 at its
endpoint, what each archived run of the phase saw of it (the statement's ``facts``), and the
judgements of the Phase 4 gates that hold once v4 is gone.

A v4 with no socket, or a socket nobody listens on, is *stopped*: an expected, observable
state in cutover, and a positive finding only in the gates judged here. Everywhere else it
stays what any unreachable daemon is (UNOBSERVABLE).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import Any

from pytest_canarygate.agtmux.gate_support import attempt
from pytest_canarygate.agtmux.gate_support import combine
from pytest_canarygate.agtmux.gate_support import daemon_info
from pytest_canarygate.agtmux.gate_support import no_v4_sessions
from pytest_canarygate.agtmux.gate_support import one_of
from pytest_canarygate.agtmux.gate_support import v4_drained_for
from pytest_canarygate.agtmux.judgement import Judgement
from pytest_canarygate.agtmux.judgement import archive_retained
from pytest_canarygate.agtmux.judgement.fleet import ANSWERING
from pytest_canarygate.agtmux.judgement.fleet import DAEMON_STATES
from pytest_canarygate.agtmux.judgement.fleet import STOPPED
from pytest_canarygate.agtmux.judgement.fleet import UNREADABLE
from pytest_canarygate.agtmux.judgement.fleet import Sighting
from pytest_canarygate.agtmux.judgement.fleet import archive_past_decommission
from pytest_canarygate.agtmux.judgement.fleet import daemon_stopped
from pytest_canarygate.agtmux.judgement.fleet import first_seen_stopped
from pytest_canarygate.agtmux.judgement.fleet import last_seen_running
from pytest_canarygate.agtmux.judgement.fleet import zero_sessions_decommissioned
from pytest_canarygate.agtmux.records import ArchiveManifest
from pytest_canarygate.agtmux.settings import AgtmuxSettings
from pytest_canarygate.custody import CustodyView
from pytest_canarygate.observation import GateEvidence
from pytest_canarygate.observation import Observation
from pytest_canarygate.observation import ObservedView
from pytest_canarygate.rpc import NO_SOCKET
from pytest_canarygate.rpc import NOT_LISTENING
from pytest_canarygate.verdicts import Verdict

#: The key of v4's sighting in a run's statement ``facts``.
FACTS_KEY = "v4"


def daemon_presence(observed: ObservedView, name: str = "v4") -> tuple[str, str]:
    """What this run found at daemon ``name``'s endpoint, read from the observation only (a
    connect changes nothing): (:data:`ANSWERING`, what it said), (:data:`STOPPED`, no socket
    or nobody listening) or (:data:`UNREADABLE`, why it could not be told)."""
    daemon = observed.observation.daemons.get(name)
    if daemon is None or not daemon.calls:
        return UNREADABLE, f"{name} was not observed in this run"
    for call in daemon.calls:
        observed.evidence_log.record(call)
    answered = [c for c in daemon.calls if c.ok]
    if answered:
        info = next((c.result for c in answered if c.method == "daemon.info"), None)
        who = (
            f"daemon.info pid {info.get('pid')}, version {info.get('version')}"
            if isinstance(info, dict)
            else f"{answered[0].method} answered"
        )
        return ANSWERING, f"{daemon.endpoint}: {who}"
    first = daemon.calls[0]
    error = first.error or ""
    if first.error_kind == "transport" and any(
        f": {marker} " in error for marker in (NO_SOCKET, NOT_LISTENING)
    ):
        return STOPPED, error
    return UNREADABLE, f"{error} ({first.error_kind})"


def run_facts_v4(observation: Observation) -> dict[str, Any]:
    """v4 as this run saw it, kept in the signed statement (``facts["v4"]``) so that a later
    run can tell whether the last observation of v4 running showed it empty, and its
    version: ``state`` (:data:`DAEMON_STATES`), ``empty`` (ready, no agent session, no managed
    pane; None when not judged) and ``version``."""
    observed = ObservedView(observation, GateEvidence())
    state, _ = daemon_presence(observed)
    empty: bool | None = None
    version: str | None = None
    if state == ANSWERING:
        judged = attempt(lambda: no_v4_sessions(observed))
        empty = {Verdict.PASS: True, Verdict.FAIL: False}.get(judged.verdict)
        try:
            found = daemon_info(observed.daemon("v4")).get("version")
        except Exception:  # judged by the gates that read it
            found = None
        version = found if isinstance(found, str) and found else None
    return {"state": state, "empty": empty, "version": version}


def _when(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _sighting(run: Mapping[str, Any]) -> Sighting | None:
    """The run's sighting of v4; None when the run did not record one (it did not observe
    v4, or predates the fact). A malformed record counts as a run that could not read v4."""
    facts = run.get("facts")
    fact = facts.get(FACTS_KEY) if isinstance(facts, Mapping) else None
    if fact is None:
        return None
    bundle, at = str(run.get("bundle")), _when(str(run.get("started_at")))
    if not isinstance(fact, Mapping):
        return Sighting(bundle, at, UNREADABLE)
    state, empty, version = fact.get("state"), fact.get("empty"), fact.get("version")
    if (
        state not in DAEMON_STATES
        or empty not in (True, False, None)
        or not (version is None or isinstance(version, str))
    ):
        return Sighting(bundle, at, UNREADABLE)
    return Sighting(bundle, at, str(state), empty, version)


def v4_sightings(custody: CustodyView) -> list[Sighting]:
    """What each archived run of this phase since it started saw of v4, oldest first."""
    found = (_sighting(run) for run in custody.custody.soak.get("runs", []))
    return sorted((s for s in found if s is not None), key=lambda s: s.at)


def v4_sessions_gone(observed: ObservedView, custody: CustodyView) -> Judgement:
    """Zero v4 sessions: a v4 that answers must be ready, empty (:func:`no_v4_sessions`); a
    stopped v4 holds none because it is decommissioned, after the last observation of it
    running showed it empty (the archive of this phase)."""
    state, detail = daemon_presence(observed)
    if state != STOPPED:
        return no_v4_sessions(observed)
    return zero_sessions_decommissioned(detail, v4_sightings(custody), phase=custody.custody.phase)


def v4_decommissioned(observed: ObservedView, settings: AgtmuxSettings) -> Judgement:
    """P4-S4: v4 stopped (nothing at its endpoint) and its binary archived intact beside its
    manifest, retained the configured days."""
    state, detail = daemon_presence(observed)
    retention = timedelta(days=settings.windows.archive_retention_days)
    return combine(
        "v4 not shown decommissioned",
        {
            "v4 daemon": daemon_stopped(state, detail),
            "archive": attempt(
                lambda: archive_retained(
                    one_of(observed, "archive_manifest", ArchiveManifest), observed.now, retention
                )
            ),
        },
    )


def v5_only_for(observed: ObservedView, window: timedelta) -> Judgement:
    """No session on v4 over ``window``: a stopped v4 serves none (the sessions it held when
    it stopped are the zero-v4-sessions gates' to judge); one that runs must be ready and hold
    nothing while up that long (:func:`v4_drained_for`)."""
    state, detail = daemon_presence(observed)
    if state == STOPPED:
        return Judgement(
            verdict=Verdict.PASS, message=f"v4 is decommissioned, serving nothing ({detail})"
        )
    return v4_drained_for(observed, window)


def v4_binary_retained(
    observed: ObservedView, custody: CustodyView, settings: AgtmuxSettings
) -> Judgement:
    """P4-X3: the archived binary is the version of the v4 that ran (its ``daemon.info`` now,
    or as the last archived run that saw it running recorded it), and retained the configured
    days past the decommission (between the last run that saw v4 running and the first that
    found it stopped, this one when none did before)."""
    manifest = one_of(observed, "archive_manifest", ArchiveManifest)
    retention = timedelta(days=settings.windows.archive_retention_days)
    state, detail = daemon_presence(observed)
    sightings = v4_sightings(custody)
    if state != STOPPED:
        try:
            version = daemon_info(observed.daemon("v4")).get("version")
        except Exception as exc:  # an unreadable v4: its version is unknown
            version, seen = None, f"v4 unreadable now: {exc}"
        else:
            seen = f"daemon.info now: {detail}"
        return archive_past_decommission(
            manifest,
            ran_version=version if isinstance(version, str) else None,
            ran_seen=seen,
            decommissioned_after=None,
            decommissioned_by=None,
            now=observed.now,
            retention=retention,
        )
    last = last_seen_running(sightings)
    first_stopped = first_seen_stopped(sightings, last.at if last else None)
    if last is None:
        seen = "no archived run of this phase saw v4 running"
    elif last.version is None:
        seen = f"the last archived run that saw it running, {last.bundle}, read no version"
    else:
        seen = f"recorded by {last.bundle} at {last.at.isoformat()}"
    return archive_past_decommission(
        manifest,
        ran_version=last.version if last is not None else None,
        ran_seen=seen,
        decommissioned_after=last.at if last is not None else None,
        decommissioned_by=first_stopped.at if first_stopped is not None else observed.now,
        now=observed.now,
        retention=retention,
    )
