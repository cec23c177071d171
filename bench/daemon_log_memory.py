"""Benchmark: the daemon log provider on logs far larger than the window it is asked for.

Writes, in a private temporary folder, a log in the agtmux daemon's format (tracing-subscriber's
default, ANSI colours included: docs/daemon-facts.md 1.2) of each size asked for, with only the
last ``--window-lines`` lines inside the last 24 hours; then reads it through the ``file://``
daemon log provider in a fresh process, asking for the last 24 hours. Prints, per size: the
log's bytes and lines, wall and CPU time of the read, peak memory of the reading process
(``ru_maxrss``) and what it was before the read, events kept, and bytes of evidence kept (the
raw payload attached to the bundle). Exits 1 if the events kept are not exactly the lines
inside the window.

    .venv/bin/python bench/daemon_log_memory.py                 # 250M and 1G
    .venv/bin/python bench/daemon_log_memory.py --sizes 100M --window-lines 3000

The generation streams (a few MB of memory whatever the size); the log is deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DAY = timedelta(hours=24)
_COLOUR = {"TRACE": "35", "DEBUG": "34", "INFO": "32", "WARN": "33", "ERROR": "31"}
# (level, target, message): what the real daemon writes (docs/daemon-facts.md 5.4, 6.5, 8.3),
# mostly routine lines, now and then one the gates look for.
_MESSAGES = (
    ("INFO", "agtmux_runtime::poll_loop", "poll tick: 12 panes, 4 sessions, 3 agents"),
    ("DEBUG", "agtmux_runtime::poll_loop", "tmux list-panes took 14ms"),
    ("INFO", "agtmux_runtime::server", "client connected: list_panes"),
    ("INFO", "agtmux_gateway::latency_window", "latency window: p95=38ms over 240 samples"),
    ("WARN", "agtmux_runtime::codex_client", "codex app-server: reconnect failed, retry in 500ms"),
    ("INFO", "agtmux_runtime::codex_client", "codex app-server reconnected"),
    ("INFO", "agtmux_gateway::cursor", "cursor recovery: retry from committed=4090"),
    ("WARN", "agtmux_runtime::poll_loop", "source stale: poller"),
)


def parse_size(text: str) -> int:
    units = {"K": 10**3, "M": 10**6, "G": 10**9}
    text = text.strip().upper()
    if text[-1:] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def log_line(at: datetime, index: int) -> str:
    level, target, message = _MESSAGES[index % len(_MESSAGES)]
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (
        f"\x1b[2m{stamp}\x1b[0m \x1b[{_COLOUR[level]}m{level:>5}\x1b[0m "
        f"\x1b[2m{target}\x1b[0m\x1b[2m:\x1b[0m {message}\n"
    )


def write_log(path: Path, size: int, window_lines: int, now: datetime) -> tuple[int, int]:
    """Write about ``size`` bytes: the old lines spread over the 30 days before the window, then
    ``window_lines`` lines inside the last 24 hours. Returns (bytes, lines)."""
    average = sum(len(log_line(now, i).encode()) for i in range(len(_MESSAGES))) / len(_MESSAGES)
    old_lines = max(0, int(size / average) - window_lines)
    start = now - DAY - timedelta(days=30)
    old_step = timedelta(days=30) / max(1, old_lines)
    window_step = (DAY - timedelta(minutes=1)) / max(1, window_lines)
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", buffering=1 << 20) as out:
        batch: list[str] = []
        for index in range(old_lines):
            batch.append(log_line(start + index * old_step, index))
            if len(batch) == 10_000:
                written += out.write("".join(batch))
                batch.clear()
        window_start = now - DAY + timedelta(seconds=30)
        for index in range(window_lines):
            batch.append(log_line(window_start + index * window_step, index))
        written += out.write("".join(batch))
    return path.stat().st_size, old_lines + window_lines


def measure(path: Path, since: datetime) -> dict[str, object]:
    """Read ``path`` through the provider (in this process) and report."""
    from pytest_canarygate.agtmux.providers import make_provider

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0, c0 = time.perf_counter(), time.process_time()
    evidence = make_provider("daemon_log", path.as_uri()).log_events(since)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB elsewhere
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "rss_before_mb": round(before * scale / 1e6, 1),
        "rss_peak_mb": round(peak * scale / 1e6, 1),
        "events_kept": len(evidence.records),
        "evidence_bytes": len(evidence.raw_text().encode()),
        "covers_from": evidence.covers_from.isoformat() if evidence.covers_from else None,
        "covers_to": evidence.covers_to.isoformat() if evidence.covers_to else None,
    }


def run(size: int, window_lines: int) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    work = Path(tempfile.mkdtemp(prefix="cg-bench-log-"))  # 0700: trusted
    try:
        log = work / "agtmux-v5.log"
        t0 = time.perf_counter()
        size_written, lines = write_log(log, size, window_lines, now)
        generated = time.perf_counter() - t0
        since = now - DAY
        child = subprocess.run(
            [sys.executable, __file__, "--measure", str(log), "--since", since.isoformat()],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        result: dict[str, Any] = json.loads(child.stdout)
        return {
            "log_bytes": size_written,
            "log_lines": lines,
            "window_lines": window_lines,
            "generate_s": round(generated, 1),
            **result,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="250M,1G", help="log sizes, comma-separated")
    parser.add_argument("--window-lines", type=int, default=5000)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--since", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, datetime.fromisoformat(args.since))))
        return 0
    ok = True
    print(
        f"{'log':>9} {'lines':>11} {'window':>7} {'wall s':>7} {'cpu s':>7} {'rss before':>11} "
        f"{'rss peak':>9} {'kept':>6} {'evidence':>10}"
    )
    for size in (parse_size(s) for s in args.sizes.split(",")):
        r = run(size, args.window_lines)
        print(
            f"{r['log_bytes'] / 1e6:>7.0f}MB {r['log_lines']:>11,} {r['window_lines']:>7} "
            f"{r['wall_s']:>7} {r['cpu_s']:>7} {r['rss_before_mb']:>9}MB {r['rss_peak_mb']:>7}MB "
            f"{r['events_kept']:>6} {r['evidence_bytes'] / 1e3:>8.0f}kB",
            flush=True,
        )
        if r["events_kept"] != r["window_lines"]:
            print(f"  kept {r['events_kept']} events, expected {r['window_lines']}")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
