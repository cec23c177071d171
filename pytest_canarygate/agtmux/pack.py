"""The agtmux pack as the engine sees it: daemons, methods, evidence, settings, simulator."""

from __future__ import annotations

import re
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import fields
from dataclasses import is_dataclass
from datetime import datetime
from datetime import timedelta
from functools import lru_cache
from typing import Any

from pytest_canarygate.agtmux import records
from pytest_canarygate.agtmux import settings
from pytest_canarygate.agtmux.judgement.core import format_duration
from pytest_canarygate.agtmux.providers import base
from pytest_canarygate.agtmux.providers.registry import registered_schemes
from pytest_canarygate.agtmux.records import ms_to_datetime
from pytest_canarygate.agtmux.runbook import CATALOG
from pytest_canarygate.clock import timestamps_in
from pytest_canarygate.codec import RecordCodec
from pytest_canarygate.codec import encode
from pytest_canarygate.errors import CanarygateError
from pytest_canarygate.observation import Observation
from pytest_canarygate.pack import EvidenceAccessor
from pytest_canarygate.pack import GateParameter
from pytest_canarygate.pack import Pack
from pytest_canarygate.pack import SimulatedFleet

NAME = "agtmux"
DAEMONS = ("v4", "v5")

#: Parameters sent with each method; anything not listed is called without params.
METHOD_PARAMS: Mapping[str, Mapping[str, Any]] = {
    "summary_changed": {"since_version": 0},
    "state_changed": {"since_version": 0},
}
#: Read at the start and at the end of every daemon's observation, to detect a restart mid-run.
BRACKET_METHOD = "daemon.info"

#: Kinds of evidence a v5 daemon may serve over its own socket (docs/operations-contract.md).
RPC_EVIDENCE_KINDS = ("snapshots", "supervisor", "alerts", "cursor", "binding", "selector")

#: What a gate may ask for with ``needs = ["evidence:<accessor>"]``: the kind of provider that
#: serves it and how to ask (history accessors take ``since``).
ACCESSORS: Mapping[str, EvidenceAccessor] = {
    "snapshots": EvidenceAccessor("snapshots", lambda p, since: p.snapshots()),
    "supervisor_status": EvidenceAccessor("supervisor", lambda p, since: p.supervisor_status()),
    "supervisor_events": EvidenceAccessor(
        "supervisor", lambda p, since: p.supervisor_events(since)
    ),
    "alert_entries": EvidenceAccessor("alerts", lambda p, since: p.alert_entries(since)),
    "cursor_stats": EvidenceAccessor("cursor", lambda p, since: p.cursor_stats()),
    "binding_stats": EvidenceAccessor("binding", lambda p, since: p.binding_stats()),
    "runtime_selector": EvidenceAccessor("selector", lambda p, since: p.runtime_selector()),
    "log_events": EvidenceAccessor("daemon_log", lambda p, since: p.log_events(since)),
    "build_result": EvidenceAccessor("build", lambda p, since: p.build_result()),
    "archive_manifest": EvidenceAccessor("archive", lambda p, since: p.archive_manifest()),
}

#: The URI schemes the pack's providers read each kind of evidence from (checked at load).
EVIDENCE_SCHEMES: Mapping[str, tuple[str, ...]] = {
    kind: registered_schemes(kind) for kind in dict.fromkeys(a.kind for a in ACCESSORS.values())
}

#: The fixture gates take to judge one active tmux session each (``per`` in the catalog).
TMUX_SESSION_FIXTURE = "agtmux_tmux_session"

CODEC = RecordCodec.from_modules(records, base)
#: Rebuild the pack's evidence records from their JSON form.
decode = CODEC.decode


#: Record fields (epoch milliseconds) that say when something happened, as opposed to when it
#: is due (``until_ms``, ``after_ms``, ``next_restart_ms``).
_HAPPENED_MS = re.compile(r"((^|_)at_ms|^as_of_ms|^covers_from_ms)$")


def past_timestamps(evidence: Any) -> Iterator[tuple[str, datetime]]:
    """Every moment the evidence says something happened at: its datetimes (coverage, log
    lines) and the records' ``*_at_ms``, ``as_of_ms`` and ``covers_from_ms`` fields."""
    yield from timestamps_in(evidence)
    records = getattr(evidence, "records", ())
    for index, record in enumerate(records if isinstance(records, tuple) else ()):
        if not is_dataclass(record):
            continue
        for f in fields(record):
            value = getattr(record, f.name)
            if _HAPPENED_MS.search(f.name) and isinstance(value, int):
                yield f"records[{index}].{f.name}", ms_to_datetime(value)


def daemon_info_pid(result: Any) -> int | None:
    """The pid ``daemon.info`` reports, if it reports one."""
    pid = result.get("pid") if isinstance(result, dict) else None
    return pid if isinstance(pid, int) and not isinstance(pid, bool) else None


#: The per-session gates' instance for the panes no tmux session lists (ghosts: managed panes
#: that left tmux, daemon facts 2.1). tmux turns ":" in a session name into "_", so no real
#: session is called this.
NO_TMUX_SESSION = "(no tmux session: ghost panes)"


def active_tmux_sessions(observation: Observation) -> list[str] | None:
    """tmux session names seen in the first ``list_panes`` reading of any daemon, and
    :data:`NO_TMUX_SESSION` when a pane of no session was seen; None if no daemon's panes
    could be read at all."""
    names: set[str] = set()
    readable = False
    for daemon in observation.daemons.values():
        for call in daemon.readings("list_panes")[:1]:
            if not call.ok or not isinstance(call.result, list):
                continue
            readable = True
            for pane in call.result:
                if not isinstance(pane, dict):
                    continue
                name = pane.get("session_name")
                names.add(name if isinstance(name, str) else NO_TMUX_SESSION)
    return sorted(names) if readable else None


def _start_simulator(scenario: str, phase: str) -> SimulatedFleet:
    from pytest_canarygate.agtmux.sim import start_fleet

    return start_fleet(scenario, phase=phase)


def _check_scenario(scenario: str) -> None:
    from pytest_canarygate.agtmux.sim.scenario import load_scenario

    load_scenario(scenario)


def run_facts(observation: Any) -> dict[str, Any]:
    """The canary sessions the runtime selector named in this run (None: not read), kept in
    the statement so that the canary's expansion can be judged from the archive; and what the
    run saw of v4 (running and empty, stopped, its version), so that cutover can be judged
    once v4 is decommissioned."""
    reading = observation.evidence.get("runtime_selector")
    sessions = None
    if reading is not None and reading.ok:
        try:
            found = decode(reading.evidence).records
        except (CanarygateError, ValueError, TypeError):  # judged by the gates that read it
            found = ()
        if len(found) == 1 and isinstance(found[0], records.RuntimeSelector):
            sessions = sorted(found[0].v5_canary_sessions)
    from pytest_canarygate.agtmux.decommission import FACTS_KEY
    from pytest_canarygate.agtmux.decommission import run_facts_v4

    return {"canary_sessions": sessions, FACTS_KEY: run_facts_v4(observation)}


def prepare(first: Observation) -> None:
    """Derive from the first readings what the gates derive first: each daemon's readiness,
    its panes, agent sessions and change log checked and indexed, and the agent-session index
    of both, called as the gates call them, so each is kept once (memo) for the gates to take.
    A check that fails is kept as well, to be raised to every gate that asks."""
    from pytest_canarygate.agtmux import protocol
    from pytest_canarygate.agtmux.gate_support import view_ready
    from pytest_canarygate.observation import GateEvidence
    from pytest_canarygate.observation import ObservedView
    from pytest_canarygate.verdicts import GateOutcome

    observed = ObservedView(first, GateEvidence())  # what it reads is no gate's evidence
    views = {name: observed.daemon(name) for name in DAEMONS if name in first.daemons}
    for name, view in views.items():
        with suppress(GateOutcome):
            view_ready(view, who=name)
        for derive in (protocol.pane_index, protocol.agent_sessions, protocol.state_changes):
            with suppress(GateOutcome):
                derive(view)
    if tuple(views) == DAEMONS:
        with suppress(GateOutcome):
            protocol.session_index(views)


def title_values(pack_settings: Any) -> dict[str, str]:
    """The configured windows as gate titles show them: ``{canary_duration}`` is "48h" under
    the runbook's numbers, ``{gradual}`` "7d" (each ``[windows]`` key without its unit)."""
    configured = isinstance(pack_settings, settings.AgtmuxSettings)
    windows = pack_settings.windows if configured else settings.Windows()
    return dict(_title_values(windows))  # asked for every gate instance: made once


@lru_cache(maxsize=16)
def _title_values(windows: settings.Windows) -> tuple[tuple[str, str], ...]:
    values = {}
    for window in fields(settings.Windows):
        amount = getattr(windows, window.name)
        if window.name.endswith("_h"):
            values[window.name.removesuffix("_h")] = format_duration(timedelta(hours=amount))
        elif window.name.endswith("_days"):
            values[window.name.removesuffix("_days")] = format_duration(timedelta(days=amount))
    return tuple(values.items())


PACK = Pack(
    name=NAME,
    catalog=CATALOG,
    daemons=DAEMONS,
    method_params=METHOD_PARAMS,
    bracket_method=BRACKET_METHOD,
    accessors=ACCESSORS,
    daemon_served_kinds=RPC_EVIDENCE_KINDS,
    evidence_daemon="v5",
    evidence_schemes=EVIDENCE_SCHEMES,
    settings_tables=settings.TABLES,
    parse_settings=settings.parse_settings,
    history=settings.history,
    encode=encode,
    decode=decode,
    timestamps=past_timestamps,
    reported_pid=daemon_info_pid,
    run_facts=run_facts,
    title_values=title_values,
    prepare=prepare,
    parameters=(
        GateParameter(
            TMUX_SESSION_FIXTURE,
            active_tmux_sessions,
            unobservable="no daemon's list_panes could be read, so the active tmux sessions "
            "are unknown",
            empty="no active tmux session was observed on any daemon",
        ),
    ),
    simulator=_start_simulator,
    check_scenario=_check_scenario,
    endpoint_example="unix:///absolute/path/to/agtmuxd.sock",
)
