"""The helper process that creates a run's Allure files while the run goes on judging."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import time
import warnings
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


def test_ctrl_c_at_the_terminal_does_not_reach_the_helper(tmp_path: Path) -> None:
    """The terminal sends Ctrl-C to its foreground process group: the helper is in a session
    of its own, so an interrupted run still gets the files of the gates it judged."""
    writer = FileWriter()
    writer.write(*group(tmp_path, "g"))
    helper = writer._helper
    assert helper is not None
    assert os.getsid(helper.pid) == helper.pid != os.getsid(0)
    assert os.getpgid(helper.pid) != os.getpgid(0)
    assert writer.flush() == []


def test_a_file_list_cut_short_is_an_error_not_a_partial_file(tmp_path: Path) -> None:
    frame = _frame(group(tmp_path, "g"))
    for cut in (2, len(frame) - 1):
        with pytest.raises(EOFError):
            serve(io.BytesIO(frame[:cut]), io.StringIO())
    assert not (tmp_path / "g-result.json").exists()
    out = io.StringIO()
    serve(io.BytesIO(frame + frame), out)  # the same group twice: the second finds it there
    assert out.getvalue() == json.dumps(f"{tmp_path / 'g-attachment.json'}: File exists") + "\n"


def test_a_hand_over_interrupted_halfway_stops_the_helper_and_writes_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Half a group left in the pipe would make the helper read file data as file names:
    it is stopped, and what comes next is written in this process."""
    writer = FileWriter()
    writer.write(*group(tmp_path, "before"))
    wait_for(tmp_path / "before-result.json")
    helper = writer._helper
    assert helper is not None
    assert helper.stdin is not None
    real_write = helper.stdin.write
    calls = []

    def interrupted(data: bytes) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(data[:10]) or 0  # a short write, as a pipe may do
        raise KeyboardInterrupt

    monkeypatch.setattr(helper.stdin, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        writer.write(*group(tmp_path, "cut"))
    writer.write(*group(tmp_path, "after"))
    assert writer.flush() == [
        "the file writer process was stopped mid-file",
        f"the file writer process exited {-signal.SIGKILL}: no message",
    ]
    assert (tmp_path / "after-result.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "after-attachment.json",
        "after-result.json",
        "before-attachment.json",
        "before-result.json",
    ]


def test_problems_survive_a_helper_that_stops_and_names_with_newlines_stay_whole(
    tmp_path: Path,
) -> None:
    odd = tmp_path / "a\nb-attachment.json"
    odd.write_text("there first")
    frame = _frame([PendingFile(str(odd), b"x")])
    out = io.StringIO()
    with pytest.raises(EOFError):
        serve(io.BytesIO(frame + frame[:3]), out)  # a problem, then a cut-off group
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [f"{odd}: File exists"]
    writer = FileWriter()
    writer.write(PendingFile(str(odd), b"x"))
    assert writer.flush() == [f"{odd}: File exists"]


def test_a_forked_child_does_not_keep_the_flush_waiting(tmp_path: Path) -> None:
    writer = FileWriter()
    writer.write(*group(tmp_path, "g"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        child = os.fork()
    if child == 0:  # pragma: no cover - the child only waits, holding what it inherited
        try:
            time.sleep(60)
        finally:
            os._exit(0)
    try:
        assert writer.flush() == []
        assert os.waitpid(child, os.WNOHANG) == (0, 0)  # flushed while the child lives on
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    assert (tmp_path / "g-result.json").exists()


def test_where_the_helper_cannot_run_the_files_are_written_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pytest_canarygate.file_writer as file_writer

    monkeypatch.setattr(file_writer, "__file__", str(tmp_path / "app.pyz" / "file_writer.py"))
    writer = FileWriter()
    writer.write(*group(tmp_path, "g"))
    assert writer._helper is None
    assert writer.flush() == []
    assert (tmp_path / "g-result.json").exists()
