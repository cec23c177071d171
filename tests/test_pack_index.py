"""The agtmux pack's answers decoded, checked and indexed once per process: the index gives what
the per-gate scan of the whole answer gave, on hostile answers too, and an answer that is
malformed or dated in the future still fails every gate that reads it."""

from __future__ import annotations

import copy
import gc
import inspect
from datetime import timedelta
from typing import Any

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from test_gates_units import FLEET_PANES
from test_gates_units import GATES
from test_gates_units import NOW
from test_gates_units import Fleet
from test_gates_units import healthy_custody
from test_gates_units import pane
from test_gates_units import stamp

from pytest_canarygate.agtmux import memo
from pytest_canarygate.agtmux.judgement import active_session_keys
from pytest_canarygate.agtmux.judgement import split_history
from pytest_canarygate.agtmux.pack import NO_TMUX_SESSION
from pytest_canarygate.agtmux.pack import decode
from pytest_canarygate.agtmux.pack import past_timestamps
from pytest_canarygate.agtmux.protocol import Change
from pytest_canarygate.agtmux.protocol import Record
from pytest_canarygate.agtmux.protocol import agent_session_keys
from pytest_canarygate.agtmux.protocol import agent_session_keys_indexed
from pytest_canarygate.agtmux.protocol import agent_sessions
from pytest_canarygate.agtmux.protocol import by_key
from pytest_canarygate.agtmux.protocol import changes_by_pane
from pytest_canarygate.agtmux.protocol import compare_projections
from pytest_canarygate.agtmux.protocol import diff_projections
from pytest_canarygate.agtmux.protocol import live_panes
from pytest_canarygate.agtmux.protocol import pane_index
from pytest_canarygate.agtmux.protocol import panes
from pytest_canarygate.agtmux.protocol import panes_of_session
from pytest_canarygate.agtmux.protocol import session_index
from pytest_canarygate.agtmux.protocol import state_changes
from pytest_canarygate.agtmux.settings import AgtmuxSettings
from pytest_canarygate.agtmux.settings import ParityConfig
from pytest_canarygate.custody import CustodyView
from pytest_canarygate.observation import CallRecord
from pytest_canarygate.observation import DaemonObservation
from pytest_canarygate.observation import DaemonView
from pytest_canarygate.observation import EvidenceReading
from pytest_canarygate.observation import GateEvidence
from pytest_canarygate.observation import Observation
from pytest_canarygate.observation import ObservedView
from pytest_canarygate.verdicts import Unobservable
from pytest_canarygate.verdicts import Verdict
from pytest_canarygate.verdicts import verdict_of

FUTURE = stamp(int((NOW + timedelta(hours=2)).timestamp() * 1000))
PAST = stamp(int((NOW - timedelta(hours=2)).timestamp() * 1000))


def daemon_of(method: str, *answers: Any) -> DaemonObservation:
    """A v5 daemon whose ``method`` answered ``answers`` (reading 1, 2, ...)."""
    calls = [
        CallRecord("v5", "unix:///v5.sock", method, n, None, "t", 1.0, result=answer)
        for n, answer in enumerate(answers, start=1)
    ]
    return DaemonObservation("v5", "unix:///v5.sock", calls)


def gate_view(daemon: DaemonObservation) -> DaemonView:
    """The daemon as one gate sees it (its own evidence)."""
    return DaemonView(daemon, GateEvidence(), NOW + timedelta(seconds=30))


def view_of(method: str, *answers: Any) -> DaemonView:
    return gate_view(daemon_of(method, *answers))


def outcome(read: Any) -> tuple[str, Any]:
    try:
        return "ok", read()
    except Unobservable as exc:
        return "unobservable", str(exc)


# --- hostile list_panes answers -----------------------------------------------------------

SESSIONS = st.sampled_from(["s1", "s2", "s 3", "", None])
PANE_IDS = st.sampled_from(["%1", "%2", "%3", "%4", "%5"])
HOSTILE_PANE = st.one_of(
    st.builds(
        lambda pid, session, managed, title, when: {
            **pane(pid, session, managed=managed),  # type: ignore[arg-type]
            **({"title_quality": "DeterministicBinding", "title": title} if title else {}),
            **({"updated_at": when} if when else {}),
        },
        PANE_IDS,
        SESSIONS,
        st.booleans(),
        st.sampled_from(["", "bound-a", "bound-b"]),
        st.sampled_from(["", PAST, FUTURE, "not a time"]),
    ),
    st.sampled_from(
        [
            {"pane_id": "%9", "presence": "managed"},  # no session_name
            {"pane_id": "%9", "presence": "sort of", "session_name": "s1"},
            {"pane_id": 9, "presence": "managed", "session_name": "s1"},
            {"pane_id": "%9", "presence": "managed", "session_name": 7},
            "a pane",
        ]
    ),
)


def scanned(found: list[Record], session: str | None) -> dict[str, Record]:
    """The old per-gate scan of the whole answer."""
    if session is None:
        return {p["pane_id"]: p for p in found if p.get("session_name") is None}
    return panes_of_session(found, session)


@settings(max_examples=300, deadline=None)
@given(st.lists(HOSTILE_PANE, max_size=7))
def test_the_pane_index_gives_what_the_scan_gave(answer: list[Any]) -> None:
    view = view_of("list_panes", answer)
    checked = outcome(lambda: panes(view))
    indexed = outcome(lambda: pane_index(view))
    assert indexed[0] == checked[0]
    if checked[0] == "unobservable":
        assert indexed[1] == checked[1]  # the same message, from the same check
        assert outcome(lambda: pane_index(view)) == checked  # and again for the next gate
        return
    for session in ("s1", "s2", "s 3", "", None, "absent"):
        assert indexed[1].of_session(session) == scanned(checked[1], session)
        assert list(indexed[1].of_session(session)) == list(scanned(checked[1], session))


def test_duplicate_pane_ids_and_a_pane_in_two_sessions_are_refused_for_every_gate() -> None:
    daemon = daemon_of("list_panes", [pane("%1", "s1"), pane("%2", "s1"), pane("%1", "s2")])
    messages = set()
    for _ in range(3):  # three gates reading the same answer
        view = gate_view(daemon)
        for read in (lambda: panes(view), lambda: pane_index(view)):  # noqa: B023
            kind, message = outcome(read)
            assert kind == "unobservable"
            messages.add(message)
        assert view._evidence.calls == daemon.calls  # kept as each gate's evidence
    assert messages == {
        "v5 unix:///v5.sock list_panes: pane_id %1 is listed twice (elements 0 and 2): the "
        "answer contradicts itself"
    }


def test_a_future_dated_pane_is_refused_in_each_reading_that_carries_it() -> None:
    good = [pane("%1", "s1", updated_at=PAST)]
    bad = [pane("%1", "s1", updated_at=FUTURE)]
    view = view_of("list_panes", good, bad)
    assert pane_index(view, 1).of_session("s1") == {"%1": good[0]}
    for _ in range(2):
        kind, message = outcome(lambda: pane_index(view, 2))
        assert kind == "unobservable"
        assert "list_panes element 0 updated_at is dated" in message


# --- hostile change logs and agent sessions ----------------------------------------------

HOSTILE_CHANGE = st.one_of(
    st.builds(
        lambda version, key, when, pid: {
            "version": version,
            "session_key": key,
            "timestamp": when,
            **({"pane_id": pid} if pid else {}),
        },
        st.integers(min_value=0, max_value=9),
        st.sampled_from(["", "poller-%1", "bound-a", "bound-c"]),
        st.sampled_from([PAST, FUTURE]),
        st.sampled_from(["", "%1", "%2", "%3", "%9"]),
    ),
    st.sampled_from(
        [
            {"version": -1, "session_key": "k", "timestamp": PAST},
            {"version": 1, "session_key": "k", "timestamp": "yesterday"},
            {"version": 1, "session_key": "k", "timestamp": PAST, "pane_id": 3},
            ["not", "an", "entry"],
        ]
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(HOSTILE_CHANGE, max_size=8))
def test_the_change_log_is_checked_once_and_fails_the_same_every_time(entries: list[Any]) -> None:
    view = view_of("state_changed", {"changes": entries, "version": 9})
    first = outcome(lambda: state_changes(view))
    assert outcome(lambda: state_changes(view)) == first
    future = any(isinstance(e, dict) and e.get("timestamp") == FUTURE for e in entries)
    if first[0] == "ok":
        assert not future
        assert [c.to_json() for c in first[1]] == [
            {
                "version": e["version"],
                "session_key": e["session_key"],
                "timestamp": first[1][i].at.isoformat(),
                **({"pane_id": e["pane_id"]} if "pane_id" in e else {}),
            }
            for i, e in enumerate(entries)
        ]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(HOSTILE_PANE.filter(lambda p: isinstance(p, dict)), max_size=6),
    st.lists(
        st.builds(
            Change,
            st.integers(0, 9),
            st.sampled_from(["", "poller-%1", "bound-a", "bound-c"]),
            st.just(NOW),
            st.sampled_from([None, "%1", "%2", "%9"]),
        ),
        max_size=8,
    ),
)
def test_keys_bound_through_the_index_are_the_keys_the_scan_found(
    some_panes: list[Record], changes: list[Change]
) -> None:
    some_panes = [p for p in some_panes if isinstance(p.get("pane_id"), str)]
    indexed = changes_by_pane(changes)
    assert agent_session_keys_indexed(some_panes, indexed) == agent_session_keys(
        some_panes, changes
    )
    assert agent_session_keys_indexed(live_panes(some_panes), indexed) == active_session_keys(
        some_panes, changes
    )


def old_session_parity(
    views: dict[str, DaemonView], here: list[Record] | None
) -> tuple[set[str], dict[str, dict[str, Record]], dict[str, list[str]]]:
    """What alpha's session parity computed per gate before the index (whole-fleet scans)."""
    changes = [c for view in views.values() for c in state_changes(view)]
    fleet = [p for view in views.values() for p in panes(view)]
    active = active_session_keys(fleet, changes)
    scope = fleet if here is None else here
    compared = active_session_keys(scope, changes)
    bound = agent_session_keys(scope, changes) if here is not None else None
    kept, history = {}, {}
    for name, view in views.items():
        sessions = by_key(agent_sessions(view), "session_key")
        kept[name] = {key: s for key, s in sessions.items() if key in compared}
        history[name] = [
            key for key in split_history(sessions, active)[1] if bound is None or key in bound
        ]
    return compared, kept, history


def fleet_views(
    answers: dict[str, tuple[list[Record], list[Any], list[Record]]],
) -> dict[str, DaemonView]:
    views = {}
    for name, (found, entries, sessions) in answers.items():
        endpoint = f"unix:///{name}.sock"
        calls = [
            CallRecord(name, endpoint, method, 1, None, "t", 1.0, result=answer)
            for method, answer in (
                ("state_changed", {"changes": entries, "version": 9}),
                ("list_panes", found),
                ("list_sessions", sessions),
            )
        ]
        daemon = DaemonObservation(name, endpoint, calls)
        views[name] = DaemonView(daemon, GateEvidence(), NOW + timedelta(seconds=30))
    return views


SESSION_RECORDS = st.lists(
    st.builds(
        lambda key, state: {"session_key": key, "activity_state": state},
        st.sampled_from(["poller-%1", "poller-%2", "poller-%3", "bound-a", "bound-c", "old"]),
        st.sampled_from(["Idle", "Running"]),
    ),
    max_size=6,
)
DAEMON_ANSWERS = st.tuples(
    st.lists(HOSTILE_PANE, max_size=5), st.lists(HOSTILE_CHANGE, max_size=5), SESSION_RECORDS
)


@settings(max_examples=300, deadline=None)
@given(DAEMON_ANSWERS, DAEMON_ANSWERS, st.sampled_from(["s1", "s2", None, "whole fleet"]))
def test_the_session_index_gives_what_the_whole_fleet_scan_gave(
    v4: Any, v5: Any, session: str | None
) -> None:
    views = fleet_views({"v4": v4, "v5": v5})
    index = outcome(lambda: session_index(views))
    here: list[Record] | None = None
    if index[0] == "ok" and session != "whole fleet":
        here = [p for v in views.values() for p in pane_index(v).of_session(session).values()]
    old = outcome(lambda: old_session_parity(views, here))
    assert index[0] == old[0]
    if old[0] == "unobservable":
        assert index[1] == old[1]
        assert outcome(lambda: session_index(views)) == index
        return
    found = index[1]
    if here is None:
        compared = set(found.active)
        bound = None
    else:
        compared = agent_session_keys_indexed(live_panes(here), found.changes)
        bound = agent_session_keys_indexed(here, found.changes)
    old_compared, old_kept, old_history = old[1]
    assert compared == old_compared
    for name in ("v4", "v5"):
        kept = {key: s for key, s in found.sessions[name].items() if key in compared}
        assert kept == old_kept[name]
        history = found.history[name] if bound is None else found.history_of(name, bound)
        assert list(history) == old_history[name]


# --- every gate that reads a bad answer fails ---------------------------------------------

PER_SESSION_GATES = (
    "alpha.parity.panes",
    "alpha.parity.signature",
    "alpha.exit.projection-matches",
)


def judge_all(
    fleet: Fleet, gates: list[tuple[str, str]]
) -> list[tuple[Verdict, str, GateEvidence]]:
    """Run the gates on ONE observation, as a run does (each gate with its own evidence)."""
    observation = fleet.observation()
    settings_ = AgtmuxSettings()
    found = []
    for gate_id, session in gates:
        evidence = GateEvidence()
        fixtures: dict[str, Any] = {
            "canarygate_observed": ObservedView(observation, evidence, decode, past_timestamps),
            "canarygate_custody": CustodyView(healthy_custody(fleet.phase), observation.now),
            "agtmux_settings": settings_,
            "agtmux_tmux_session": session,
            "agtmux_pane_parity": settings_.pane_parity,
            "agtmux_session_parity": settings_.session_parity,
        }
        function = GATES[gate_id]
        try:
            function(**{n: fixtures[n] for n in inspect.signature(function).parameters})
        except BaseException as exc:
            found.append((*verdict_of(exc), evidence))
        else:
            found.append((Verdict.PASS, "", evidence))
    return found


EVERY_INSTANCE = [
    (gate_id, session)
    for session in ("session-alpha", "session-beta", NO_TMUX_SESSION)
    for gate_id in PER_SESSION_GATES
] + [("alpha.parity.sessions", "")]


def test_a_healthy_fleet_passes_every_instance_on_one_observation() -> None:
    for verdict, message, evidence in judge_all(Fleet.healthy(), EVERY_INSTANCE):
        assert verdict is Verdict.PASS, message
        assert len(str(evidence.notes)) < 20_000  # the slice judged, not the fleet


def test_a_malformed_list_panes_fails_every_gate_that_reads_it() -> None:
    fleet = Fleet.healthy()
    fleet.calls["v5"]["list_panes"] = [*FLEET_PANES, pane("%1", "session-beta")]
    results = judge_all(fleet, EVERY_INSTANCE)
    assert len(results) == len(EVERY_INSTANCE)
    for verdict, message, evidence in results:
        assert verdict is Verdict.UNOBSERVABLE
        assert "list_panes: pane_id %1 is listed twice (elements 0 and 4)" in message
        assert any(c.daemon == "v5" and c.method == "list_panes" for c in evidence.calls)


def test_a_future_dated_change_fails_every_gate_that_reads_the_change_log() -> None:
    fleet = Fleet.healthy()
    log = fleet.calls["v4"]["state_changed"]
    log["changes"] = [*log["changes"], {"version": 99, "session_key": "k", "timestamp": FUTURE}]
    results = judge_all(fleet, EVERY_INSTANCE)
    for (gate_id, _), (verdict, message, _) in zip(EVERY_INSTANCE, results, strict=True):
        if gate_id in ("alpha.parity.panes", "alpha.parity.signature"):
            assert verdict is Verdict.PASS, message  # they read no change log
            continue
        assert verdict is Verdict.UNOBSERVABLE, (gate_id, message)
        assert message.startswith("v4 unix://")
        assert "state_changed change 12 (version 99) is dated" in message
        assert "evidence from the future proves nothing" in message


def compared_fields(found: Record, key_field: str = "pane_id") -> Record:
    """The pane fields the parity gates compare, as a note shows them where v4 and v5 agree:
    without the pane id, which the entry names."""
    parity = AgtmuxSettings().pane_parity
    return {
        name: found[name]
        for name in parity.compared(set(found))
        if name in found and name != key_field
    }


def agreed(judged: dict[str, Any], key_field: str = "pane_id") -> dict[str, Record]:
    """The records a note shows v4 and v5 agree on, by key, with the fields compared."""
    return {key: group["fields"] for group in judged["v4 and v5"] for key in group[key_field]}


def test_each_gate_notes_only_its_own_session() -> None:
    fleet = Fleet.healthy()
    [(_, _, alpha), (_, _, beta)] = judge_all(
        fleet,
        [
            ("alpha.exit.projection-matches", "session-alpha"),
            ("alpha.exit.projection-matches", "session-beta"),
        ],
    )
    judged = dict(alpha.notes)["projection judged"]
    assert judged["reading 2"] == "as in reading 1"
    noted = judged["reading 1"]
    assert "differ" not in noted["panes"]
    panes_noted = agreed(noted["panes"])
    assert sorted(panes_noted) == ["%1", "%2"]
    assert panes_noted["%1"] == compared_fields(pane("%1", "session-alpha"))
    assert panes_noted["%2"] == compared_fields(pane("%2", "session-alpha", managed=False))
    assert list(agreed(noted["agent sessions"], "session_key")) == ["poller-%1"]
    log = noted["change log"]  # v4's and v5's entries of these panes
    assert log["entries"] == {"%1": 4, "%2": 0}
    assert log["session_keys"] == {"%1": ["poller-%1"]}
    other = dict(beta.notes)["projection judged"]["reading 1"]
    assert list(agreed(other["panes"])) == ["%3"]


def test_a_pane_that_differs_is_noted_for_each_daemon_and_reading() -> None:
    fleet = Fleet.healthy()
    drifted = [p if p["pane_id"] != "%1" else {**p, "provider": "codex"} for p in FLEET_PANES]
    fleet.second[("v5", "list_panes")] = drifted
    [(verdict, _, evidence)] = judge_all(fleet, [("alpha.parity.panes", "session-alpha")])
    assert verdict is Verdict.INCONCLUSIVE  # flapping: in reading 2 only
    judged = dict(evidence.notes)["panes judged"]
    assert agreed(judged["reading 1"])["%1"] == compared_fields(pane("%1", "session-alpha"))
    assert "differ" not in judged["reading 1"]
    differ = judged["reading 2"]["differ"]
    assert list(differ) == ["%1"]
    assert differ["%1"]["v4"]["provider"] == "claude"
    assert differ["%1"]["v5"]["provider"] == "codex"
    assert differ["%1"]["v4"]["pane_id"] == "%1"  # a record that differs is shown whole
    assert agreed(judged["reading 2"])["%2"] == agreed(judged["reading 1"])["%2"]
    assert len(str(evidence.notes)) < 5_000


def test_a_note_groups_the_records_v4_and_v5_agree_on() -> None:
    parity = ParityConfig(("pane_id", "presence", "count"), ())
    v4 = {
        "%1": {"pane_id": "%1", "presence": "managed", "count": 1},
        "%2": {"pane_id": "%2", "presence": "managed", "count": 1},
        "%3": {"pane_id": "%3", "presence": "managed", "count": True},  # 1 == True, not alike
        "%4": {"pane_id": "%4", "presence": "managed", "count": 1.0},
        "%5": {"pane_id": "%5", "presence": "unmanaged"},
        "%6": {"pane_id": "%6", "presence": "unmanaged"},
        "%7": {"pane_id": "%7", "presence": "managed", "count": 2},
    }
    v5 = {**v4, "%7": {**v4["%7"], "count": 3}, "%8": {"pane_id": "%8", "presence": "managed"}}
    differences, judged = compare_projections(v4, v5, parity, label="pane", key_field="pane_id")
    assert [str(d) for d in differences] == [
        "pane %7: count v4=2 v5=3",
        "pane %8: (record) v4='<missing>' v5='present'",
    ]
    assert judged["v4 and v5"] == [
        {"pane_id": ["%1", "%2"], "fields": {"count": 1, "presence": "managed"}},
        {"pane_id": ["%3"], "fields": {"count": True, "presence": "managed"}},
        {"pane_id": ["%4"], "fields": {"count": 1.0, "presence": "managed"}},
        {"pane_id": ["%5", "%6"], "fields": {"presence": "unmanaged"}},
    ]
    assert judged["differ"] == {
        "%7": {"v4": v4["%7"], "v5": v5["%7"]},
        "%8": {"v4": None, "v5": v5["%8"]},
    }


def test_a_record_whose_key_field_is_not_its_key_shows_it() -> None:
    parity = ParityConfig(("pane_id", "presence"), ())
    v4 = {"%1": {"pane_id": "%9", "presence": "managed"}}
    differences, judged = compare_projections(v4, v4, parity, label="pane", key_field="pane_id")
    assert differences == []
    assert judged == {
        "v4 and v5": [{"pane_id": ["%1"], "fields": {"pane_id": "%9", "presence": "managed"}}]
    }


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-2, 2)
    | st.sampled_from([0.0, 1.0, -0.0, 2.5, "", "a", "<missing>"])
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from("xy"), inner, max_size=2)
    ),
    max_leaves=4,
)
RECORD_FIELDS = st.dictionaries(st.sampled_from(["a", "b", "c", "updated_at"]), JSON_VALUES)
PROJECTIONS = st.dictionaries(st.sampled_from(["%1", "%2", "%3", "%4"]), RECORD_FIELDS, max_size=4)


@settings(max_examples=300, deadline=None)
@given(
    v4=PROJECTIONS,
    v5=PROJECTIONS,
    fields=st.none() | st.just(("a", "b", "key")),
    key_as_field=st.booleans(),
)
def test_compare_projections_finds_what_diff_projections_finds_and_notes_every_record(
    v4: dict[str, Record], v5: dict[str, Record], fields: tuple[str, ...] | None, key_as_field: bool
) -> None:
    if key_as_field:  # the records carry their key, as panes carry their pane_id
        v4 = {k: {**r, "key": k} for k, r in v4.items()}
        v5 = {k: {**r, "key": k} for k, r in v5.items()}
    parity = ParityConfig(fields, ("updated_at",))
    differences, judged = compare_projections(v4, v5, parity, label="r", key_field="key")
    assert differences == diff_projections(v4, v5, parity, label="r")
    differ = judged.get("differ", {})
    grouped = [key for group in judged["v4 and v5"] for key in group["key"]]
    assert sorted([*grouped, *differ]) == sorted(v4.keys() | v5.keys())  # each once
    for key, shown in agreed(judged, "key").items():
        names = parity.compared(set(v4[key]) | set(v5[key]))
        assert shown == {n: v4[key][n] for n in names if n in v4[key] and n != "key"}
        assert shown == {n: v5[key][n] for n in names if n in v5[key] and n != "key"}
        assert not [d for d in differences if d.where == f"r {key}"]
    for group in judged["v4 and v5"]:  # alike: the same values, written the same way
        assert len({repr(agreed(judged, "key")[key]) for key in group["key"]}) == 1


# --- provider evidence: decoded and checked once per reading ------------------------------


def test_provider_evidence_is_decoded_once_and_a_future_one_fails_every_gate() -> None:
    later = NOW + timedelta(hours=1)
    for stamps, fails in (({"a": NOW}, False), ({"a": NOW, "b": later}, True)):
        reading = EvidenceReading("x", "kind", "file:///x", "t", 1.0, stamps)
        observation = Observation("alpha", {}, "2026-11-26T12:00:00Z", "-", {}, {"x": reading})
        decoded: list[Any] = []

        def counting(value: Any) -> Any:
            decoded.append(value)  # noqa: B023
            return value

        def timestamps(value: Any) -> Any:
            return value.items()

        for _ in range(3):  # three gates
            view = ObservedView(observation, GateEvidence(), counting, timestamps)
            kind, found = outcome(lambda: view.evidence("x"))  # noqa: B023
            assert view.evidence_log.readings == [reading]  # recorded by every gate
            if fails:
                assert kind == "unobservable"
                assert found.startswith("kind evidence from file:///x: b is dated")
            else:
                assert found is stamps
        assert len(decoded) == 1


def test_a_value_kept_with_an_answer_serves_each_record_holding_it_while_they_live() -> None:
    """Two readings that share one decoded answer share what is derived from it; once the
    records holding it are gone, so is the value (runs in one process do not pile up)."""
    answer = [pane("%1", "s1")]
    first = CallRecord("v5", "unix:///v5.sock", "list_panes", 1, None, "t", 1.0, result=answer)
    second = CallRecord("v5", "unix:///v5.sock", "list_panes", 2, None, "t", 1.0, result=answer)
    made: list[int] = []
    before = memo.cached_records()
    for record in (first, second, first):
        value = memo.derived(record, "k", lambda: made.append(1) or len(made), answer=answer)
        assert value == 1
    assert made == [1]  # computed once, for both records
    assert memo.cached_records() == before + 1
    del first, record
    gc.collect()
    assert memo.cached_records() == before  # dropped with the first record to go
    again = memo.derived(second, "k", lambda: made.append(1) or len(made), answer=answer)
    assert again == 2  # derived afresh for the record still alive
    del second
    gc.collect()
    assert memo.cached_records() == before


def test_a_failure_is_raised_afresh_and_forgotten_with_its_record() -> None:
    class Record_:
        pass

    def bad() -> None:
        raise Unobservable("bad")

    record = Record_()
    errors = []
    for _ in range(2):
        try:
            memo.derived(record, "k", bad)
        except Unobservable as exc:
            errors.append(exc)
    assert [str(e) for e in errors] == ["bad", "bad"]
    assert errors[0] is not errors[1]
    before = memo.cached_records()
    del record, errors  # a raised exception's traceback holds the record while it lives
    gc.collect()
    assert memo.cached_records() == before - 1


# --- deriving ahead, from the first readings (Pack.prepare) ----------------------------------

PER_SESSION_GATES = (
    "alpha.parity.panes",
    "alpha.parity.signature",
    "alpha.exit.projection-matches",
)


def fresh_healthy() -> Fleet:
    """The healthy alpha fleet, every answer its own object: as two daemons answer, and
    nothing derived from them in another test (memo keeps values per process)."""
    fleet = Fleet.healthy("alpha")
    fleet.calls = {name: copy.deepcopy(answers) for name, answers in fleet.calls.items()}
    return fleet


def judge_on(observation: Observation, gate_id: str, session: str) -> tuple[Verdict, str]:
    """One gate judged on this very observation (its records, so what memo keeps of them)."""
    settings = AgtmuxSettings()
    fixtures: dict[str, Any] = {
        "canarygate_observed": ObservedView(observation, GateEvidence(), decode, past_timestamps),
        "canarygate_custody": CustodyView(healthy_custody("alpha"), observation.now),
        "agtmux_settings": settings,
        "agtmux_tmux_session": session,
        "agtmux_pane_parity": settings.pane_parity,
        "agtmux_session_parity": settings.session_parity,
    }
    function = GATES[gate_id]
    try:
        function(**{name: fixtures[name] for name in inspect.signature(function).parameters})
    except BaseException as exc:
        return verdict_of(exc)
    return Verdict.PASS, ""


def test_prepare_derives_ahead_what_the_gates_then_take(monkeypatch: Any) -> None:
    """Prepared from the first readings, the checked answers and indexes are the ones the
    per-session gates then read: none is derived again, for the first reading nor for a
    second one that got the same answer."""
    from pytest_canarygate.agtmux import pack
    from pytest_canarygate.agtmux import protocol

    made: dict[str, int] = {}
    for name in ("_checked_records", "_checked_changes", "_index_panes", "changes_by_pane"):
        real = getattr(protocol, name)

        def counted(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            made[_name] = made.get(_name, 0) + 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(protocol, name, counted)
    observation = fresh_healthy().observation()
    pack.prepare(observation.first_round())
    # v4 and v5: list_panes and list_sessions checked, list_panes indexed, the change logs
    # checked, and one agent-session index built of both logs
    assert made == {
        "_checked_records": 4,
        "_checked_changes": 2,
        "_index_panes": 2,
        "changes_by_pane": 2,
    }
    prepared = dict(made)
    for gate_id in PER_SESSION_GATES:
        for session in ("session-alpha", "session-beta", NO_TMUX_SESSION):
            verdict, message = judge_on(observation, gate_id, session)
            assert verdict is Verdict.PASS, message
    # the second readings of the healthy fleet got the same answers: only reading 2's
    # agent-session index is new (it is made from that reading's records)
    assert made == {**prepared, "changes_by_pane": prepared["changes_by_pane"] + 2}


def test_what_prepare_kept_of_a_malformed_answer_fails_the_gates_as_it_would_have() -> None:
    from pytest_canarygate.agtmux import pack

    def fleet() -> Fleet:
        broken = fresh_healthy()
        twice = [*FLEET_PANES, FLEET_PANES[0]]  # one pane listed twice: contradicts itself
        broken.calls["v5"]["list_panes"] = twice
        return broken

    unprepared = judge_on(fleet().observation(), "alpha.parity.panes", "session-alpha")
    observation = fleet().observation()
    pack.prepare(observation.first_round())
    prepared = judge_on(observation, "alpha.parity.panes", "session-alpha")
    assert prepared == unprepared
    assert prepared[0] is Verdict.UNOBSERVABLE
    assert "listed twice" in prepared[1]
