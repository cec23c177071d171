"""The helper process that creates a run's Allure files while the run goes on judging."""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from pytest_canarygate.file_writer import FileWriter
from pytest_canarygate.file_writer import PendingFile
from pytest_canarygate.file_writer import _frame
from pytest_canarygate.file_writer import serve


def group(folder: Path, name: str, body: bytes = b"{}") -> tuple[PendingFile, PendingFile]:
    """An attachment, then a result that names it (temporary name, then renamed)."""
    return (
        PendingFile(str(folder / f"{name}-attachment.json"), b"evidence of " + name.encode()),
        PendingFile(
            str(folder / f".{name}-result.json.tmp"), body, str(folder / f"{name}-result.json")
        ),
    )


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def test_groups_are_written_in_order_whole_and_renamed(tmp_path: Path) -> None:
    writer = FileWriter()
    for n in range(50):
        writer.write(*group(tmp_path, f"g{n}", body=b"x" * (n * 1000)))
    assert writer.flush() == []
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    for n in range(50):
        assert (tmp_path / f"g{n}-result.json").read_bytes() == b"x" * (n * 1000)
        assert (tmp_path / f"g{n}-attachment.json").read_bytes() == f"evidence of g{n}".encode()
    assert writer.flush() == []  # again: nothing left, nothing failed


def test_a_file_that_cannot_be_written_stops_its_group_and_is_named(tmp_path: Path) -> None:
    (tmp_path / "bad-attachment.json").write_bytes(b"was here first")
    writer = FileWriter()
    writer.write(*group(tmp_path, "before"))
    writer.write(*group(tmp_path, "bad"))
    writer.write(*group(tmp_path, "after"))
    [problem] = writer.flush()
    assert problem == f"{tmp_path / 'bad-attachment.json'}: File exists"
    # never over an existing file, and no result naming an attachment that was not written
    assert (tmp_path / "bad-attachment.json").read_bytes() == b"was here first"
    assert not (tmp_path / "bad-result.json").exists()
    assert not (tmp_path / ".bad-result.json.tmp").exists()
    assert (tmp_path / "before-result.json").exists()
    assert (tmp_path / "after-result.json").exists()


def test_a_missing_folder_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    writer = FileWriter()
    writer.write(*group(tmp_path / "gone", "g"))
    [problem] = writer.flush()
    assert problem == f"{tmp_path / 'gone' / 'g-attachment.json'}: No such file or directory"


def test_the_writer_can_be_used_again_after_a_flush(tmp_path: Path) -> None:
    writer = FileWriter()
    writer.write(*group(tmp_path, "first"))
    assert writer.flush() == []
    writer.write(*group(tmp_path, "second"))
    assert writer.flush() == []
    assert (tmp_path / "second-result.json").exists()


def test_files_are_written_by_another_process(tmp_path: Path) -> None:
    writer = FileWriter()
    writer.write(*group(tmp_path, "g"))
    helper = writer._helper
    assert helper is not None
    assert helper.pid != os.getpid()
    assert writer.flush() == []
    assert helper.returncode == 0


def test_when_the_helper_dies_later_files_are_written_here_and_it_is_said(
    tmp_path: Path,
) -> None:
    writer = FileWriter()
    writer.write(*group(tmp_path, "before"))
    wait_for(tmp_path / "before-result.json")
    helper = writer._helper
    assert helper is not None
    helper.kill()
    helper.wait()
    writer.write(*group(tmp_path, "after"))
    problems = writer.flush()
    assert problems == [
        "the file writer process stopped: [Errno 32] Broken pipe",
        f"the file writer process exited {-signal.SIGKILL}: no message",
    ]
    assert (tmp_path / "after-result.json").read_bytes() == b"{}"
    assert (tmp_path / "after-attachment.json").exists()


def test_without_a_helper_the_files_are_written_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    writer = FileWriter()
    writer.write(*group(tmp_path, "g"))
    [problem] = writer.flush()
    assert problem.startswith("the file writer process did not start: ")
    assert (tmp_path / "g-result.json").read_bytes() == b"{}"


def test_the_helper_keeps_writing_through_ctrl_c(tmp_path: Path) -> None:
    writer = FileWriter()
    writer.write(*group(tmp_path, "before"))
    wait_for(tmp_path / "before-result.json")  # started, and ignoring SIGINT by now
    helper = writer._helper
    assert helper is not None
    os.kill(helper.pid, signal.SIGINT)
    writer.write(*group(tmp_path, "after"))
    assert writer.flush() == []
    assert (tmp_path / "after-result.json").exists()


def test_a_file_list_cut_short_is_an_error_not_a_partial_file(tmp_path: Path) -> None:
    frame = _frame(group(tmp_path, "g"))
    for cut in (2, len(frame) - 1):
        with pytest.raises(EOFError):
            serve(io.BytesIO(frame[:cut]), io.StringIO())
    assert not (tmp_path / "g-result.json").exists()
    out = io.StringIO()
    serve(io.BytesIO(frame + frame), out)  # the same group twice: the second finds it there
    assert out.getvalue() == f"{tmp_path / 'g-attachment.json'}: File exists\n"
