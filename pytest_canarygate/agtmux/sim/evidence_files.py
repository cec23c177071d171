"""The simulated deployment's evidence as files, in the formats of ``docs/operations-contract.md``.

:func:`write_evidence` fills a directory with what the file providers read: a snapshot directory,
a supervisor directory (``status.json``, ``events.jsonl``), the alert ledger, the cursor and
binding stats, the runtime selector TOML (each only if the deployment serves that method), the
v5 daemon's own log in the real tracing format (unless the scenario keeps it unpublished), the v5
build's JUnit report and the archived v4 binary with its manifest. Everything is written as of
the model's ``anchor_ms``.
"""

from __future__ import annotations

import hashlib
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pytest_canarygate.agtmux.providers.files import SUPERVISOR_EVENTS_FILE
from pytest_canarygate.agtmux.providers.files import SUPERVISOR_STATUS_FILE
from pytest_canarygate.agtmux.providers.junit import COMMIT_PROPERTY
from pytest_canarygate.agtmux.providers.junit import VERIFY_SUITE
from pytest_canarygate.agtmux.providers.junit import VERSION_PROPERTY
from pytest_canarygate.agtmux.providers.ops import ALERT_LEDGER
from pytest_canarygate.agtmux.providers.ops import BINDING_STATS
from pytest_canarygate.agtmux.providers.ops import CURSOR_STATS
from pytest_canarygate.agtmux.providers.ops import RUNTIME_SELECTOR
from pytest_canarygate.agtmux.providers.ops import SNAPSHOT_LIST
from pytest_canarygate.agtmux.providers.ops import SUPERVISOR_EVENTS
from pytest_canarygate.agtmux.providers.ops import SUPERVISOR_STATUS
from pytest_canarygate.agtmux.sim.clock import format_log_time
from pytest_canarygate.agtmux.sim.ops_answers import LogLine
from pytest_canarygate.agtmux.sim.ops_answers import OpsModel
from pytest_canarygate.agtmux.sim.ops_scenario import BuildSpec

__all__ = ["ARCHIVE_DIR", "MANIFEST", "render_log_line", "write_evidence"]

ARCHIVE_DIR = "v4-archive"
MANIFEST = "manifest.json"
WRITER = "agtmux-sim"
_LEVEL_COLOUR = {"TRACE": "35", "DEBUG": "34", "INFO": "32", "WARN": "33", "ERROR": "31"}
# Crates and modules the made-up test names of a JUnit report are spread over.
_TEST_MODULES = (
    ("agtmux-core-v5", ("resolver", "signature", "title", "health", "binding")),
    ("agtmux-daemon-v5", ("projection", "snapshot", "supervisor", "alert_routing")),
    ("agtmux-gateway", ("latency_window", "cursor_hardening", "trust_guard")),
    ("agtmux-runtime", ("poll_loop", "server", "codex_client")),
    ("agtmux-protocol", ("codec", "rpc")),
    ("agtmux-cli", ("args", "output")),
)
BUILD_COMMIT = "5e1f0c2a9d7b"


def write_evidence(
    directory: Path, model: OpsModel, *, socket_path: str, v4_version: str
) -> dict[str, Path]:
    """Write every evidence file into the existing ``directory``; return evidence kind ->
    path for what was written (kinds the deployment does not serve have no file)."""
    now = model.anchor_ms
    written: dict[str, Path] = {}
    served = model.served
    if SNAPSHOT_LIST in served:
        snapshots = directory / "snapshots"
        snapshots.mkdir()
        for snapshot in model.snapshots:
            _write_json(snapshots / f"{snapshot['snapshot_id']}.json", snapshot)
        written["snapshots"] = snapshots
    if served & {SUPERVISOR_STATUS, SUPERVISOR_EVENTS}:
        supervisor = directory / "supervisor"
        supervisor.mkdir()
        if SUPERVISOR_STATUS in served:
            _write_json(supervisor / SUPERVISOR_STATUS_FILE, model.supervisor_status(now))
        if SUPERVISOR_EVENTS in served:
            timed = ((e["at_ms"], e) for e in model.events)
            _write_jsonl(supervisor / SUPERVISOR_EVENTS_FILE, model.covers_from_ms, timed, now)
        written["supervisor"] = supervisor
    if ALERT_LEDGER in served:
        path = directory / "alerts.jsonl"
        _write_jsonl(path, model.covers_from_ms, model.alert_records, now)
        written["alerts"] = path
    for kind, method, name, document in (
        ("cursor", CURSOR_STATS, "cursor.json", model.cursor_stats),
        ("binding", BINDING_STATS, "binding.json", model.binding_stats),
    ):
        if method in served:
            _write_json(directory / name, document(now))
            written[kind] = directory / name
    if RUNTIME_SELECTOR in served:
        written["selector"] = _write_selector(directory / "runtime.toml", model)
    if model.spec.daemon_log:
        log = directory / "agtmux-v5.log"
        _write_text(log, "".join(render_log_line(line) for line in model.log_lines(socket_path)))
        written["daemon_log"] = log
    junit = directory / "junit.xml"
    _write_bytes(junit, _junit(model))
    written["build"] = junit
    written["archive"] = _write_archive(directory / ARCHIVE_DIR, model, v4_version)
    return written


def render_log_line(line: LogLine) -> str:
    """One line as tracing-subscriber's default formatter writes it, ANSI colours included."""
    colour = _LEVEL_COLOUR[line.level]
    return (
        f"\x1b[2m{format_log_time(line.at_us)}\x1b[0m \x1b[{colour}m{line.level:>5}\x1b[0m "
        f"\x1b[2m{line.target}\x1b[0m\x1b[2m:\x1b[0m {line.message}\n"
    )


def _write_bytes(path: Path, data: bytes) -> None:
    """Write atomically: a temporary name, then a rename."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _write_text(path: Path, text: str) -> None:
    _write_bytes(path, text.encode("utf-8"))


def _write_json(path: Path, document: object) -> None:
    _write_text(path, json.dumps(document, indent=2, sort_keys=True) + "\n")


def _write_jsonl(
    path: Path, covers_from_ms: int, records: Iterable[tuple[int, Any]], now_ms: int
) -> None:
    """A JSON lines history: the header, the records in written order, a checkpoint at now."""
    lines = [{"header": {"covers_from_ms": covers_from_ms, "writer": WRITER}}]
    lines.extend(record for _, record in records)
    lines.append({"checkpoint": {"at_ms": now_ms}})
    _write_text(path, "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines))


def _write_selector(path: Path, model: OpsModel) -> Path:
    selector = model.runtime_selector()
    lines = [
        f"# runtime selector of the simulated deployment (phase {model.phase or 'not given'})",
        "[runtime]",
        f"default_daemon = {json.dumps(selector['default_daemon'])}",
        f"v5_enabled = {json.dumps(selector['v5_enabled'])}",
    ]
    if selector["v5_canary_sessions"]:
        lines.append(f"v5_canary_sessions = {json.dumps(selector['v5_canary_sessions'])}")
    for route in selector["sessions"]:
        lines.append("[[runtime.sessions]]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in route.items())
    _write_text(path, "\n".join(lines) + "\n")
    # When the routing last changed is the file's modification time (a real, observable fact).
    changed_ns = model.selector_changed_ms * 1_000_000
    os.utime(path, ns=(changed_ns, changed_ns))
    return path


def _junit(model: OpsModel) -> bytes:
    """A nextest-style JUnit report as the operations contract reads it: ``build.tests``
    cases over ``build.crates`` crates, the ``failing`` ones failed, the ``just-verify`` checks,
    the version and commit as properties and the run's start as the root's timestamp."""
    build: BuildSpec = model.spec.build
    crates = _TEST_MODULES[: build.crates]
    cases = [(crate, name, True) for crate, _, name in (n.partition("::") for n in build.failing)]
    taken = set(build.failing)
    number = 0
    while len(cases) < build.tests + len(build.checks):
        if number < len(build.checks):
            check = build.checks[number]
            number += 1
            if f"{VERIFY_SUITE}::{check}" not in taken:
                cases.append((VERIFY_SUITE, check, False))
            continue
        crate, modules = crates[number % len(crates)]
        module = modules[number // len(crates) % len(modules)]
        name = f"{module}::tests::case_{number:03d}"
        if f"{crate}::{name}" not in taken:
            cases.append((crate, name, False))
        number += 1
    suites: dict[str, list[tuple[str, bool]]] = {}
    for crate, name, failed in cases:
        suites.setdefault(crate, []).append((name, failed))
    root = ET.Element(
        "testsuites",
        name="nextest-run",
        tests=str(len(cases)),
        failures=str(len(build.failing)),
        errors="0",
        timestamp=format_log_time(model.build_started_ms * 1000),
    )
    properties = ET.SubElement(root, "properties")
    version = build.version if build.version is not None else model.v5_version
    ET.SubElement(properties, "property", name=VERSION_PROPERTY, value=version)
    ET.SubElement(properties, "property", name=COMMIT_PROPERTY, value=BUILD_COMMIT)
    for crate, members in sorted(suites.items()):
        failures = sum(1 for _, failed in members if failed)
        suite = ET.SubElement(
            root, "testsuite", name=crate, tests=str(len(members)), failures=str(failures)
        )
        for name, failed in members:
            case = ET.SubElement(suite, "testcase", name=name, classname=crate, time="0.001")
            if failed:
                failure = ET.SubElement(case, "failure", message="assertion failed", type="panic")
                failure.text = f"thread '{name}' panicked"
    ET.indent(root)
    report: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return report + b"\n"


def _write_archive(directory: Path, model: OpsModel, v4_version: str) -> Path:
    """The archived v4 binary (a small stand-in) and ``manifest.json``; return the manifest."""
    directory.mkdir()
    binary = f"agtmux-{v4_version}"
    data = f"#!/bin/sh\n# agtmux {v4_version} (v4), archived by the simulator\nexit 1\n".encode()
    _write_bytes(directory / binary, data)
    archived_at = model.anchor_ms - model.spec.archive.archived_ago_ms
    manifest = {
        "binary": binary,
        "sha256": hashlib.sha256(data).hexdigest(),
        "archived_at_ms": archived_at,
        "retain_until_ms": archived_at + model.spec.archive.retention_ms,
        "version": model.spec.archive.version or v4_version,
    }
    _write_json(directory / MANIFEST, manifest)
    return directory / MANIFEST
