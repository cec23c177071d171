"""The custody record as gates and the session read it: which waiver applies, what a gate is
told when a link, a rehearsal or a sign-off is missing."""

from __future__ import annotations

from datetime import datetime
from datetime import timezone
from typing import Any

import pytest

from pytest_canarygate.custody import Custody
from pytest_canarygate.custody import CustodyView
from pytest_canarygate.custody import waiver_for
from pytest_canarygate.custody import waiver_misses
from pytest_canarygate.verdicts import Inconclusive
from pytest_canarygate.verdicts import Verdict

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)
GATE = "canary.exit.users-confirm"


def waiver(**changes: Any) -> dict[str, Any]:
    return {
        "file": "w.dsse.json",
        "kind": "waiver",
        "subject": GATE,
        "by": "alice",
        "signed_at": "2026-12-01T00:00:00.000Z",
        "session": None,
        "text": "user on leave",
        "until": "2026-12-10T00:00:00.000Z",
        "phase": "canary",
        "refers": [],
        "keyid": "k" * 64,
        "digest": "d" * 64,
        **changes,
    }


def custody(*attestations: dict[str, Any], phase: str = "canary") -> Custody:
    return Custody(phase=phase, attestations=list(attestations))


@pytest.mark.parametrize(
    ("record", "verdict", "waivable", "applies"),
    [
        (waiver(), Verdict.INCONCLUSIVE, (), True),
        (waiver(), Verdict.UNOBSERVABLE, (), True),
        (waiver(phase=None), Verdict.INCONCLUSIVE, (), True),  # any phase
        (waiver(), Verdict.PASS, (), False),  # nothing to waive
        (waiver(), Verdict.FAIL, (), False),  # a FAIL only where the config allows it
        (waiver(), Verdict.FAIL, (GATE,), True),
        (waiver(until="2026-12-04T11:59:59.999Z"), Verdict.INCONCLUSIVE, (), False),  # expired
        (waiver(until="2026-12-04T12:00:00.000Z"), Verdict.INCONCLUSIVE, (), False),  # at now
        (waiver(phase="gradual"), Verdict.INCONCLUSIVE, (), False),  # another phase's
        (waiver(subject="canary.exit.stable-48h"), Verdict.INCONCLUSIVE, (), False),
        (waiver(kind="signoff"), Verdict.INCONCLUSIVE, (), False),  # a sign-off waives nothing
    ],
)
def test_which_waiver_applies(
    record: dict[str, Any], verdict: Verdict, waivable: tuple[str, ...], applies: bool
) -> None:
    found = waiver_for(custody(record), GATE, verdict, NOW, waivable)
    assert (found is not None) is applies


def test_a_missing_link_says_why() -> None:
    view = CustodyView(
        Custody(phase="canary", problems=["no signed alpha bundle to rely on: none found"]), NOW
    )
    with pytest.raises(Inconclusive, match="no signed alpha bundle to rely on: none found"):
        view.link("alpha")


def test_a_link_not_required_is_said_so() -> None:
    with pytest.raises(Inconclusive, match="does not rely on any gradual bundle"):
        CustodyView(Custody(phase="alpha"), NOW).link("gradual")


def test_a_missing_sign_off_names_the_item_the_session_and_what_was_refused() -> None:
    record = Custody(
        phase="canary",
        refused=[
            {
                "file": "x-signoff-P2-X3-mallory.dsse.json",
                "kind": "signoff",
                "reason": "signer mallory is not in [[signers]]",
                "malformed": False,
            }
        ],
    )
    with pytest.raises(Inconclusive) as info:
        CustodyView(record, NOW).require_signoff("P2-X3", "session-beta")
    message = str(info.value)
    assert "no valid signed sign-off of P2-X3 for session session-beta" in message
    assert "signer mallory is not in [[signers]]" in message


def test_a_resolution_closes_only_the_report_it_names() -> None:
    report_a = waiver(kind="report", subject="s-a", session="s-a", digest="a" * 64, until=None)
    report_b = waiver(kind="report", subject="s-b", session="s-b", digest="b" * 64, until=None)
    resolution = waiver(
        kind="resolution", subject="a" * 64, refers=["a" * 64], until=None, by="dave"
    )
    view = CustodyView(custody(report_a, report_b, resolution), NOW)
    assert [r["session"] for r in view.open_reports()] == ["s-b"]


def test_custody_round_trips_through_its_file(tmp_path: Any) -> None:
    record = custody(waiver())
    record.relies_on = [{"phase": "alpha", "bundle": "b", "digest": "d" * 64}]
    record.write(tmp_path)
    assert Custody.load(tmp_path) == record


def test_a_run_folder_without_custody_relies_on_nothing(tmp_path: Any) -> None:
    loaded = Custody.load(tmp_path)
    assert loaded.relies_on == []
    assert loaded.problems == ["custody.json was not written in this run"]


@pytest.mark.parametrize(
    ("record", "verdict", "reason"),
    [
        (waiver(phase="gradual"), Verdict.INCONCLUSIVE, "w.dsse.json is for phase gradual"),
        (
            waiver(until="2026-12-01T00:00:00.000Z"),
            Verdict.INCONCLUSIVE,
            "w.dsse.json expired at 2026-12-01T00:00:00.000Z",
        ),
        (waiver(), Verdict.FAIL, "a FAIL is waivable only where [chain] waivable_failures"),
    ],
)
def test_a_waiver_that_does_not_apply_says_why(
    record: dict[str, Any], verdict: Verdict, reason: str
) -> None:
    (miss,) = waiver_misses(custody(record), GATE, verdict, NOW, ())
    assert reason in miss


def test_a_refused_waiver_file_of_the_gate_is_named() -> None:
    record = custody()
    record.refused = [
        {
            "file": f"20261201T000000.000Z-waiver-{GATE}-bob.dsse.json",
            "kind": "waiver",
            "reason": "signer 'bob' may not waive it ([[signers]] waive)",
            "malformed": False,
        }
    ]
    (miss,) = waiver_misses(record, GATE, Verdict.INCONCLUSIVE, NOW, ())
    assert "may not waive" in miss
    assert waiver_misses(record, GATE, Verdict.PASS, NOW, ()) == []


def test_nobody_resolves_their_own_report() -> None:
    report = waiver(kind="report", subject="s-a", session="s-a", digest="a" * 64, by="carol")
    own = waiver(kind="resolution", subject="a" * 64, refers=["a" * 64], by="carol")
    other = waiver(kind="resolution", subject="a" * 64, refers=["a" * 64], by="dave")
    assert [r["by"] for r in CustodyView(custody(report, own), NOW).open_reports()] == ["carol"]
    assert CustodyView(custody(report, own, other), NOW).open_reports() == []
