"""Progress lines: one per stage that took at least its threshold, with counts, escaped.

Time is a hand-driven fake clock: nothing here waits or measures real time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bundle_helpers import KeyPair
from bundle_helpers import make_bundle
from bundle_helpers import make_predicate
from bundle_helpers import read_statement

from pytest_canarygate import progress
from pytest_canarygate.cli import main
from pytest_canarygate.progress import Stage
from pytest_canarygate.progress import format_bytes
from pytest_canarygate.progress import format_line
from pytest_canarygate.signing import seal_bundle


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def keys(tmp_path: Path) -> KeyPair:
    return KeyPair(tmp_path / "keys")


def sealed(root: Path, keys: KeyPair) -> Path:
    bundle = make_bundle(root)
    seal_bundle(bundle, make_predicate(bundle), keys.signer)
    return bundle


def test_a_stage_over_the_threshold_writes_one_line_with_its_counts(clock: FakeClock) -> None:
    lines: list[str] = []
    stage = Stage("sealed", lines.append, clock=clock)
    clock.now += 1.25
    line = stage.done(count=4012, what="files", size_bytes=12_345_678)
    assert lines == ["canarygate: sealed 4,012 files (12.3 MB) in 1.2 s"]
    assert line == lines[0]
    assert stage.elapsed_s == pytest.approx(1.25)


def test_a_stage_under_the_threshold_writes_nothing(clock: FakeClock) -> None:
    lines: list[str] = []
    stage = Stage("judged", lines.append, clock=clock)
    clock.now += 0.999
    assert stage.done(count=3022, what="gate instances") is None
    assert lines == []


def test_the_threshold_is_inclusive_and_a_parameter(clock: FakeClock) -> None:
    lines: list[str] = []
    Stage("judged", lines.append, clock=clock, threshold_s=0).done(count=1, what="gate")
    stage = Stage("observed", lines.append, clock=clock, threshold_s=2.0)
    clock.now += 2.0
    stage.done(count=20, what="calls")
    assert lines == ["canarygate: judged 1 gate in 0.0 s", "canarygate: observed 20 calls in 2.0 s"]


def test_a_stage_is_timed_from_its_creation_not_from_the_first_clock_reading(
    clock: FakeClock,
) -> None:
    clock.now = 5.0
    lines: list[str] = []
    stage = Stage("verified", lines.append, clock=clock)
    clock.now = 5.5
    stage.done(count=3, what="files")
    assert lines == []


def test_done_twice_writes_once(clock: FakeClock) -> None:
    lines: list[str] = []
    stage = Stage("sealed", lines.append, clock=clock)
    clock.now += 3
    stage.done(count=1, what="file")
    clock.now += 3
    assert stage.done(count=2, what="files") is None
    assert lines == ["canarygate: sealed 1 file in 3.0 s"]


def test_a_clock_that_steps_back_never_prints_a_negative_time(clock: FakeClock) -> None:
    lines: list[str] = []
    stage = Stage("judged", lines.append, clock=clock, threshold_s=0)
    clock.now -= 10
    stage.done()
    assert lines == ["canarygate: judged in 0.0 s"]


def test_the_label_is_the_callers_and_the_prefix_can_be_left_to_the_writer(
    clock: FakeClock,
) -> None:
    lines: list[str] = []
    stage = Stage("observed v5 at unix:///run/v5.sock:", lines.append, clock=clock, prefix="")
    clock.now += 1.44
    stage.done(count=20, what="calls")
    assert lines == ["observed v5 at unix:///run/v5.sock: 20 calls in 1.4 s"]


@pytest.mark.parametrize(
    "hostile",
    [
        "v5\x1b[2J\x1b[H",  # clear the screen
        "v5\nVALID  all good",  # a forged line of its own
        "v5\u202eevil",  # reorder what follows
    ],
)
def test_untrusted_text_in_a_label_is_escaped(clock: FakeClock, hostile: str) -> None:
    lines: list[str] = []
    stage = Stage(f"observed {hostile}:", lines.append, clock=clock, threshold_s=0)
    stage.done(count=1, what="call")
    [line] = lines
    assert line.isprintable()  # no control, separator or bidi character left
    assert line.startswith("canarygate: observed v5\\")


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (4_100, "4.1 kB"),
        (12_345_678, "12.3 MB"),
        (999_949_999, "999.9 MB"),
        (999_960, "1.0 MB"),
        (3_200_000_000, "3.2 GB"),
        (5_000_000_000_000, "5000.0 GB"),
    ],
)
def test_sizes_are_printed_in_decimal_units(size: int, text: str) -> None:
    assert format_bytes(size) == text


def test_a_line_holds_only_the_parts_given() -> None:
    assert format_line("judged", 61.04) == "canarygate: judged in 61.0 s"
    assert format_line("read", 2, size_bytes=10) == "canarygate: read (10 B) in 2.0 s"
    assert format_line("read", 2, count=1_000_000) == "canarygate: read 1,000,000 in 2.0 s"


def test_canarygate_verify_reports_its_progress_on_stderr_and_keeps_json_clean(
    tmp_path: Path,
    keys: KeyPair,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bundle = sealed(tmp_path, keys)
    files = len(read_statement(bundle)["subject"])
    monkeypatch.setattr(progress, "DEFAULT_THRESHOLD_S", 0.0)
    assert main(["verify", str(bundle), "--key", str(keys.public_path), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == "VALID"
    [line] = captured.err.splitlines()
    assert line.startswith(f"canarygate: verified {files} files in ")


def test_canarygate_verify_says_nothing_of_a_quick_verification(
    tmp_path: Path,
    keys: KeyPair,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bundle = sealed(tmp_path, keys)
    monkeypatch.setattr(progress, "DEFAULT_THRESHOLD_S", float("inf"))
    assert main(["verify", str(bundle), "--key", str(keys.public_path)]) == 0
    assert capsys.readouterr().err == ""


def test_canarygate_verify_of_a_tampered_bundle_still_reports_invalid(
    tmp_path: Path,
    keys: KeyPair,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bundle = sealed(tmp_path, keys)
    files = len(read_statement(bundle)["subject"])
    (bundle / "run.json").write_bytes(b"[]")
    monkeypatch.setattr(progress, "DEFAULT_THRESHOLD_S", 0.0)
    assert main(["verify", str(bundle), "--key", str(keys.public_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("INVALID")
    [line] = captured.err.splitlines()
    assert line.startswith(f"canarygate: checked {files} files in ")  # not "verified": it did not
