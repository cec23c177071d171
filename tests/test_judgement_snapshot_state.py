"""Unit tests of "a snapshot at the current state" (P2-C1, PR-1, RB-R4): the newest snapshot
taken since a moment holds the live projection version, whatever its age."""

from __future__ import annotations

import pytest

from pytest_canarygate.agtmux.judgement import snapshot_at_current_state
from pytest_canarygate.agtmux.records import SnapshotMetadata
from pytest_canarygate.verdicts import Verdict

NOW_MS = 1_795_651_200_000
MIN = 60_000
START_MS = NOW_MS - 60 * MIN  # v5's process started an hour ago


def snap(ago_ms: int, version: int, snapshot_id: str = "snap-3") -> SnapshotMetadata:
    return SnapshotMetadata(snapshot_id, NOW_MS - ago_ms, version, 4, 6, "Periodic", 4096)


def judge(*snaps: SnapshotMetadata, current: int = 40, since_ms: int = START_MS):
    return snapshot_at_current_state(
        snaps, current, NOW_MS, since_ms=since_ms, since="v5's process started"
    )


def test_equal_version_passes_however_old() -> None:
    judged = judge(snap(50 * MIN, 40))
    assert judged.verdict is Verdict.PASS
    assert "holds v5's current projection version 40" in judged.message
    assert judged.numbers["versions_behind"] == 0


def test_behind_fails_with_the_count() -> None:
    judged = judge(snap(2 * MIN, 25))
    assert judged.verdict is Verdict.FAIL
    assert "is 15 versions behind v5's current projection version 40" in judged.message
    assert "snap-3 (Periodic, version 25, taken 2m ago)" in judged.message


def test_ahead_is_version_ahead() -> None:
    judged = judge(snap(2 * MIN, 43))
    assert judged.verdict is Verdict.FAIL
    assert "VersionAhead { snapshot_version: 43, current_version: 40 } on v5" in judged.message


def test_the_newest_snapshot_is_judged_not_any_matching_one() -> None:
    judged = judge(snap(10 * MIN, 40, "snap-2"), snap(MIN, 39, "snap-3"))
    assert judged.verdict is Verdict.FAIL
    assert judged.numbers["snapshot_id"] == "snap-3"


def test_a_snapshot_from_before_the_moment_does_not_count() -> None:
    # same version, but taken by an earlier process (versions restart at 0) or before the switch
    judged = judge(snap(61 * MIN, 40))
    assert judged.verdict is Verdict.FAIL
    assert "no snapshot taken since v5's process started" in judged.message
    assert "the newest of 1 retained is snap-3" in judged.message


def test_a_snapshot_taken_at_the_moment_counts() -> None:
    assert judge(snap(0, 40), since_ms=NOW_MS).verdict is Verdict.PASS


def test_no_snapshot_fails() -> None:
    judged = judge()
    assert judged.verdict is Verdict.FAIL
    assert judged.message == "no snapshot is retained"


@pytest.mark.parametrize("snapshot_id", ["backup-1", "snap-0", "snap-", "snap-01", "SNAP-1"])
def test_an_id_that_is_not_snap_n_metadata_fails(snapshot_id: str) -> None:
    judged = judge(snap(MIN, 40, snapshot_id))
    assert judged.verdict is Verdict.FAIL
    assert "is not snap-<n> metadata" in judged.message


def test_version_zero_snapshot_of_an_empty_projection_passes_only_if_still_empty() -> None:
    assert judge(snap(MIN, 0), current=0).verdict is Verdict.PASS
    assert judge(snap(MIN, 0), current=1).verdict is Verdict.FAIL
