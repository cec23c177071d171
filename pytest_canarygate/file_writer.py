"""Small files written in order by a helper process, while the run goes on judging.

A phase run writes two files per gate instance (its Allure result and its evidence), thousands
in all. Creating them is mostly time in the kernel; a thread of the run would spend it waiting
for the interpreter lock the judging holds. So the run hands each gate's files to a
:class:`FileWriter`, which passes them down a pipe to a helper: this very file, run by the same
Python (``-I -S``: the standard library only) in a session of its own (Ctrl-C at the terminal
does not reach it; it ends when its input does), which creates them on the other core.
:meth:`FileWriter.flush` waits until every file handed over is written and says which could not
be; the run checks its results and seals the bundle only after it.

Files are handed over in groups (:meth:`FileWriter.write`) and written in the order given. The
first file of a group that cannot be written stops the rest of its group: a result is never
written when the attachment it names was not, and no file is created over an existing one.
Should the helper fail to start, die, or a hand-over be interrupted halfway, the helper is
stopped, the files handed over from then on are written in this process, and the failure is
one of the problems :meth:`~FileWriter.flush` returns (files the helper had taken but not
written are missing, and the run finds their gates without a result).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import weakref
from collections.abc import Iterable
from typing import IO
from typing import NamedTuple

__all__ = ["FileWriter", "PendingFile"]

# A group: its number of files; then per file the lengths of path, rename target and data.
_GROUP = struct.Struct("!I")
_FILE = struct.Struct("!III")
#: The helper prints at most this many problems as they happen (each one line of JSON), then
#: only how many more: it never fills the pipe the run reads only when it flushes.
_MAX_PRINTED = 50


class PendingFile(NamedTuple):
    """A file to create (it must not exist) with ``data``, renamed to ``rename_to`` if given."""

    path: str
    data: bytes
    rename_to: str | None = None


class FileWriter:
    """Writes groups of :class:`PendingFile` through a helper process started at the first
    write (see the module's docstring)."""

    def __init__(self) -> None:
        self._helper: subprocess.Popen[bytes] | None = None
        self._problems: list[str] = []
        #: no helper (it failed, or cannot run from here): write in this process
        self._in_process = not os.path.isfile(__file__)  # e.g. imported from a zip archive
        _WRITERS.add(self)

    def write(self, *files: PendingFile) -> None:
        """Hand ``files`` over; they are written in this order, after every earlier group."""
        if not self._in_process:
            helper = self._helper or self._start()
            if helper is not None and helper.stdin is not None:
                frame = memoryview(_frame(files))
                sent = 0
                try:
                    while sent < len(frame):  # unbuffered: a helper that died is known at once
                        sent += helper.stdin.write(frame[sent:]) or 0
                    return
                except OSError as exc:  # the helper died: from now on, write here
                    self._give_up(helper, f"the file writer process stopped: {exc}")
                except BaseException:
                    if sent:  # half a group in the pipe: what follows would be misread
                        self._give_up(helper, "the file writer process was stopped mid-file")
                    raise
        self._problems += create_all(files)

    def flush(self) -> list[str]:
        """Wait until every file handed over is written (or failed); return what failed, one
        ``path: reason`` each, and forget it. The writer can be used again afterwards."""
        helper, self._helper = self._helper, None
        if helper is not None:
            self._problems += _finish(helper)
        problems, self._problems = self._problems, []
        return problems

    def _start(self) -> subprocess.Popen[bytes] | None:
        try:
            self._helper = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__)],
                bufsize=0,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            self._problems.append(f"the file writer process did not start: {exc}")
            self._in_process = True
        return self._helper

    def _give_up(self, helper: subprocess.Popen[bytes], why: str) -> None:
        """Stop the helper (what it did not write is lost, and said) and write here from now."""
        self._problems.append(why)
        self._in_process = True
        helper.kill()

    def _forget_helper(self) -> None:
        """In a child forked from the run: the helper is the parent's; never hold its input
        open (the parent's flush would wait for this child) and write here if ever asked."""
        helper, self._helper = self._helper, None
        self._in_process = True
        if helper is not None:
            for stream in (helper.stdin, helper.stdout, helper.stderr):
                if stream is not None:
                    stream.close()
            helper.returncode = 0  # not this process's child: nothing to wait for here


_WRITERS: weakref.WeakSet[FileWriter] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for writer in list(_WRITERS):
        writer._forget_helper()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _frame(files: Iterable[PendingFile]) -> bytes:
    parts = []
    count = 0
    for pending in files:
        path = os.fsencode(pending.path)
        rename_to = os.fsencode(pending.rename_to) if pending.rename_to is not None else b""
        parts += [_FILE.pack(len(path), len(rename_to), len(pending.data)), path, rename_to]
        parts.append(pending.data)
        count += 1
    return _GROUP.pack(count) + b"".join(parts)


def _finish(helper: subprocess.Popen[bytes]) -> list[str]:
    """End the helper's input, wait for it, and return the problems it printed and, should it
    have failed, how."""
    output, errors = helper.communicate()
    problems = []
    for line in output.decode("utf-8", "backslashreplace").splitlines():
        try:
            problem = json.loads(line)
        except ValueError:
            problem = line
        problems.append(problem if isinstance(problem, str) else line)
    if helper.returncode != 0:
        lines = errors.decode("utf-8", "backslashreplace").strip().splitlines()
        last = lines[-1] if lines else "no message"
        problems.append(f"the file writer process exited {helper.returncode}: {last}")
    return problems


def create(pending: PendingFile) -> None:
    """Create ``pending`` (never over an existing file), then rename it if it says so."""
    fd = os.open(pending.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(pending.data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    if pending.rename_to is not None:
        os.replace(pending.path, pending.rename_to)


def create_all(files: Iterable[PendingFile]) -> list[str]:
    """Create ``files`` in order, up to the first that fails; that one's ``path: reason``."""
    for pending in files:
        try:
            create(pending)
        except OSError as exc:
            return [f"{pending.path}: {exc.strerror or exc}"]
    return []


def _read(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError("the run's file list ended in the middle of a file")
    return data


def serve(stream: IO[bytes], out: IO[str]) -> None:
    """The helper: create the groups of files framed on ``stream`` until it ends. Each problem
    is printed to ``out`` when it happens, one JSON string a line (the first
    :data:`_MAX_PRINTED`, then how many more), so none is lost should the helper stop."""
    count = 0

    def say(problem: str) -> None:
        nonlocal count
        count += 1
        if count <= _MAX_PRINTED:
            out.write(json.dumps(problem) + "\n")
            out.flush()

    try:
        while head := stream.read(_GROUP.size):
            if len(head) != _GROUP.size:
                raise EOFError("the run's file list ended in the middle of a group")
            files = []
            for _ in range(_GROUP.unpack(head)[0]):
                path_size, rename_size, data_size = _FILE.unpack(_read(stream, _FILE.size))
                path = os.fsdecode(_read(stream, path_size))
                rename_to = os.fsdecode(_read(stream, rename_size)) if rename_size else None
                files.append(PendingFile(path, _read(stream, data_size), rename_to))
            for problem in create_all(files):
                say(problem)
    finally:
        if count > _MAX_PRINTED:
            out.write(json.dumps(f"... and {count - _MAX_PRINTED} more files not written") + "\n")


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout)
