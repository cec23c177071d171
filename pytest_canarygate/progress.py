"""Progress on long runs: one line per stage of work that took longer than a threshold.

A stage is timed from its creation to :meth:`Stage.done`; only a stage that took at least
``threshold_s`` (a second by default) prints, with its counts::

    stage = Stage("sealed", write)
    ...                                       # the work
    stage.done(count=4012, what="files", size_bytes=12_300_000)
    # canarygate: sealed 4,012 files (12.3 MB) in 1.2 s

The clock is a parameter, so that tests drive it by hand; every line is escaped before it is
written, so an endpoint or a file name cannot act on the terminal.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pytest_canarygate.textsafe import visible

__all__ = ["DEFAULT_THRESHOLD_S", "PREFIX", "Stage", "format_bytes", "format_line"]

#: Stages quicker than this print nothing.
DEFAULT_THRESHOLD_S = 1.0
PREFIX = "canarygate: "


def format_bytes(size: int) -> str:
    """``size`` in decimal units, e.g. ``812 B``, ``4.1 kB``, ``12.3 MB``."""
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("kB", "MB", "GB"):
        value /= 1000
        if round(value, 1) < 1000 or unit == "GB":  # 999,960 B is 1.0 MB, not 1000.0 kB
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def format_line(
    label: str,
    elapsed_s: float,
    *,
    count: int | None = None,
    what: str = "",
    size_bytes: int | None = None,
    prefix: str = PREFIX,
) -> str:
    """One progress line: ``{prefix}{label} {count} {what} ({size}) in {elapsed} s``, each
    part present only when given; the whole line escaped."""
    parts = [label]
    if count is not None:
        parts.append(f"{count:,}")
    if what:
        parts.append(what)
    if size_bytes is not None:
        parts.append(f"({format_bytes(size_bytes)})")
    parts.append(f"in {elapsed_s:.1f} s")
    return visible(prefix + " ".join(parts))


class Stage:
    """A stage of work, timed from its creation; :meth:`done` writes its line when it took at
    least ``threshold_s``. A stage that ends in an error is simply never done: no line."""

    def __init__(
        self,
        label: str,
        write: Callable[[str], object],
        *,
        threshold_s: float = DEFAULT_THRESHOLD_S,
        clock: Callable[[], float] = time.monotonic,
        prefix: str = PREFIX,
    ) -> None:
        self.label = label
        self._write = write
        self._threshold_s = threshold_s
        self._clock = clock
        self._prefix = prefix
        self._started = clock()
        self.elapsed_s: float | None = None

    def done(
        self,
        *,
        count: int | None = None,
        what: str = "",
        size_bytes: int | None = None,
    ) -> str | None:
        """End the stage; return the line written, or None when it was quicker than the
        threshold. A second call writes nothing."""
        if self.elapsed_s is not None:
            return None
        self.elapsed_s = max(0.0, self._clock() - self._started)
        if self.elapsed_s < self._threshold_s:
            return None
        line = format_line(
            self.label,
            self.elapsed_s,
            count=count,
            what=what,
            size_bytes=size_bytes,
            prefix=self._prefix,
        )
        self._write(line)
        return line
