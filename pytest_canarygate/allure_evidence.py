"""Allure integration: what a gate's evidence attachment holds, the categories, and the
run-level files (the results themselves: ``allure_results``).
"""

from __future__ import annotations

import json
import platform
import weakref
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import pytest

if TYPE_CHECKING:
    from pytest_canarygate.observation import CallRecord
    from pytest_canarygate.observation import EvidenceReading
    from pytest_canarygate.observation import GateEvidence
    from pytest_canarygate.observation import Observation


ALLURE_PLUGIN = "allure_pytest"
RESULTS_DIR = "allure-results"

#: Allure categories, matched against the exception line Allure records for a failed gate
#: ("pytest_canarygate.verdicts.GateFailed: ..."); the first category that matches wins.
#: ``[\s\S]*`` rather than an inline flag: Allure 3 (JavaScript) searches, Allure 2 (Java)
#: matches the whole multi-line message, and only this form means the same to both.
_ANY = r"[\s\S]*"
_UNOBSERVABLE = (
    "Unobservable|EndpointError|TransportError|EndpointTimeout|ProtocolError|RemoteError"
    "|UntrustedEndpointError|NotServed|EvidenceMissing"
)
_BREACH = "p95|threshold|breach|exceed|too old|older"
CATEGORIES = [
    {
        "name": "Unobservable",
        "messageRegex": f"{_ANY}({_UNOBSERVABLE}): {_ANY}",
        "matchedStatuses": ["failed", "broken"],
    },
    {
        "name": "Inconclusive",
        "messageRegex": f"{_ANY}Inconclusive: {_ANY}",
        "matchedStatuses": ["failed", "broken"],
    },
    {
        "name": "Parity drift",
        "messageRegex": rf"{_ANY}GateFailed: [^\n]*(differ|match|disagree){_ANY}",
        "matchedStatuses": ["failed"],
    },
    {
        "name": "Threshold breach",
        "messageRegex": rf"{_ANY}GateFailed: [^\n]*({_BREACH}){_ANY}",
        "matchedStatuses": ["failed"],
    },
    {
        "name": "Criterion violated",
        "messageRegex": f"{_ANY}(GateFailed|AssertionError){_ANY}",
        "matchedStatuses": ["failed"],
    },
    {"name": "Gate error (a bug in the gate or the engine)", "matchedStatuses": ["broken"]},
]


def enabled(config: pytest.Config) -> bool:
    """True when allure-pytest is active in this process."""
    return config.pluginmanager.hasplugin(ALLURE_PLUGIN)


#: An answer larger than this (as compact JSON) is not copied into the gate's attachment: the
#: entry only names it (daemon, method, reading; or provider accessor), and the bundle's
#: observation holds it verbatim, signed. A gate's attachment stays a few KB however large the
#: fleet.
MAX_INLINE_BYTES = 1024
#: A daemon's reply larger than this holds no answer small enough to copy: its answer is not
#: encoded only to be measured.
_LARGE_REPLY_BYTES = 64 * MAX_INLINE_BYTES
#: The one attachment of a gate: what it read and what it computed.
ATTACHMENT_NAME = "evidence"
_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=str)
_ENTRY_TEXT: dict[int, tuple[weakref.ref[Any], str]] = {}


def _entry_text(
    record: Any, keys: dict[str, Any], value_name: str, value: Any, known_size: int | None = None
) -> str:
    """One observed record as the attachment lists it: ``keys`` (what locates it in the
    observation), then its error, or its value inline when small enough, or nothing more: the
    observation has it, and when and how large it was (the attachment of every gate that read
    it would repeat those). ``known_size``: a size already known to be over the limit, so
    that a large answer is not encoded again only to be measured."""
    entry = dict(keys)
    if not record.ok:
        entry.update(ok=False, error=record.error, error_kind=record.error_kind)
    elif known_size is None or known_size <= MAX_INLINE_BYTES:
        text = _ENCODER.encode(value)
        if len(text) <= MAX_INLINE_BYTES:
            return _ENCODER.encode(entry)[:-1] + f',"{value_name}":{text}}}'
    return _ENCODER.encode(entry)


def _cached(record: Any) -> str | None:
    cached = _ENTRY_TEXT.get(id(record))
    return cached[1] if cached is not None and cached[0]() is record else None


def _call_text(call: CallRecord) -> str:
    """A daemon answer's entry under its daemon and method, made once per record per process
    (many gates read it): its reading and its params (when it was sent any)."""
    text = _cached(call)
    if text is None:
        keys: dict[str, Any] = {"reading": call.reading}
        if call.params is not None:
            keys["params"] = call.params
        size: int | None = None
        if call.ok and call.reply_bytes is not None:
            if call.reply_bytes > _LARGE_REPLY_BYTES:
                size = call.reply_bytes
        elif call.ok and "result_bytes" in call.__dict__:  # known: the record was written
            size = call.result_bytes
        text = _entry_text(call, keys, "result", call.result, size)
        _ENTRY_TEXT[id(call)] = (weakref.ref(call), text)
    return text


def _reading_text(reading: EvidenceReading) -> str:
    """A provider reading's entry, made once per record per process."""
    text = _cached(reading)
    if text is None:
        keys = {"accessor": reading.accessor, "kind": reading.kind, "uri": reading.uri}
        text = _entry_text(reading, keys, "evidence", reading.evidence)
        _ENTRY_TEXT[id(reading)] = (weakref.ref(reading), text)
    return text


def evidence_text(evidence: GateEvidence) -> str:
    """The gate's attachment, JSON: ``calls`` (daemon answers, ``{daemon: {method: [entry]}}``,
    each entry its ``reading`` and ``params`` if any) and ``readings`` (provider evidence, each
    entry its ``accessor``, ``kind`` and ``uri``), each with its value inline (``result``,
    ``evidence``) when that is at most ``inline_limit`` bytes of compact JSON, or ``ok: false``
    and its error; an entry with neither is in the bundle's ``observation`` file, with when it
    was read and its size. Then ``notes`` (``{"name", "value"}``)."""
    from pytest_canarygate.observation import OBSERVATION_FILE

    grouped: dict[str, dict[str, list[str]]] = {}
    for call in evidence.calls:
        grouped.setdefault(call.daemon, {}).setdefault(call.method, []).append(_call_text(call))
    calls = ",".join(
        _ENCODER.encode(daemon)
        + ":{"
        + ",".join(f"{_ENCODER.encode(m)}:[{','.join(e)}]" for m, e in methods.items())
        + "}"
        for daemon, methods in grouped.items()
    )
    readings = ",".join(_reading_text(r) for r in evidence.readings)
    notes = _ENCODER.encode([{"name": name, "value": value} for name, value in evidence.notes])
    head = _ENCODER.encode(
        {"inline_limit": MAX_INLINE_BYTES, "observation": OBSERVATION_FILE.as_posix()}
    )
    return f'{{"calls":{{{calls}}},{head[1:-1]},"notes":{notes},"readings":[{readings}]}}'


def write_run_files(
    results_dir: Path, observation: Observation, *, migration_id: str, phase: str, run_name: str
) -> None:
    """Write environment.properties, categories.json and executor.json."""
    from pytest_canarygate import __version__

    results_dir.mkdir(parents=True, exist_ok=True)
    env: dict[str, Any] = {
        "migration": migration_id,
        "phase": phase,
        "target": observation.target.get("kind"),
        "scenario": observation.target.get("scenario") or "-",
        "engine": f"pytest-canarygate {__version__}",
        # once here, not as a label on each of thousands of results
        "runner": f"pytest {pytest.__version__} on {platform.python_implementation()} "
        f"{platform.python_version()}",
        "observed_at": observation.started_at,
    }
    for name, daemon in observation.daemons.items():
        env[f"{name}.endpoint"] = daemon.endpoint
        info = next((c for c in daemon.readings("daemon.info") if c.ok), None)
        if info and isinstance(info.result, dict):
            env[f"{name}.version"] = info.result.get("version")
            env[f"{name}.pid"] = info.result.get("pid")
            env[f"{name}.nonce"] = info.result.get("nonce")
        else:
            env[f"{name}.version"] = "unobservable"
    lines = [f"{key}={_escape(value)}" for key, value in env.items()]
    (results_dir / "environment.properties").write_text("\n".join(lines) + "\n")
    (results_dir / "categories.json").write_text(json.dumps(CATEGORIES, indent=1) + "\n")
    executor = {
        "name": "pytest-canarygate",
        "type": "canarygate",
        "buildName": run_name.removesuffix("-running"),
        "reportName": f"{migration_id} {phase}",
        "url": "",
        "host": platform.node(),
    }
    (results_dir / "executor.json").write_text(json.dumps(executor, indent=1) + "\n")


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n")
