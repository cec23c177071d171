"""Build small fake evidence bundles (test data) and keys for the signing/verify tests."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_canarygate.keys import generate_keypair
from pytest_canarygate.keys import load_public_key
from pytest_canarygate.keys import load_signer
from pytest_canarygate.signing import ENVELOPE_NAME

MIGRATION = "agtmux-v4-v5"
PHASE = "canary"
BUNDLE = "20250101T000000Z-PASS"

DEFAULT_FILES: Mapping[str, bytes] = {
    "allure-results/0b1c-result.json": b'{"name": "test_gate_alpha", "status": "passed"}\n',
    "allure-results/9f2e-attachment.json": b'{"panes": 3}\n',
    "allure-results/environment.properties": b"scenario=healthy\n",
    "observation/observation.json.gz": b'{"daemons": {"v4": {}, "v5": {}}}\n',
    "run.json": b'{"phase": "canary"}\n',
}


def make_bundle(
    root: Path,
    *,
    migration: str = MIGRATION,
    phase: str = PHASE,
    name: str = BUNDLE,
    files: Mapping[str, bytes] = DEFAULT_FILES,
) -> Path:
    """Create ``root/reports/<migration>/<phase>/<name>/`` holding ``files``; return it."""
    bundle = root / "reports" / migration / phase / name
    bundle.mkdir(parents=True)
    for rel, data in files.items():
        path = bundle / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return bundle


def make_predicate(
    bundle: Path,
    *,
    kind: str = "live",
    gates: list[dict[str, Any]] | None = None,
    ephemeral: bool = False,
) -> dict[str, Any]:
    """A predicate as the plugin would build it for ``bundle`` (reports layout assumed)."""
    gates = (
        [
            {"gate": "test_parity", "item": "C-1", "verdict": "PASS", "nodeid": "gates/a.py::p"},
            {"gate": "test_alerts", "item": "C-2", "verdict": "WAIVED", "nodeid": "gates/a.py::a"},
        ]
        if gates is None
        else gates
    )
    counts: dict[str, int] = {}
    for gate in gates:
        counts[gate["verdict"]] = counts.get(gate["verdict"], 0) + 1
    return {
        "migration_id": bundle.parent.parent.name,
        "phase": bundle.parent.name,
        "verdict": bundle.name.rsplit("-", 1)[-1],
        "scope": "complete",
        "target": {"kind": kind, "scenario": "healthy" if kind == "simulated" else None},
        "gates": gates,
        "counts": counts,
        "started_at": "2025-01-01T00:00:00Z",
        "finished_at": "2025-01-01T00:05:00Z",
        "signer": {"ephemeral": ephemeral},
        "relies_on": [],
    }


class KeyPair:
    """A key pair on disk: private key (0600), public key JSON, and loaded objects."""

    def __init__(self, directory: Path, name: str = "signing.key") -> None:
        self.private_path = directory / name
        self.keyid = generate_keypair(self.private_path)
        self.public_path = Path(f"{self.private_path}.pub.json")
        self.signer = load_signer(self.private_path)
        self.public_key = load_public_key(self.public_path)

    @property
    def trusted(self) -> dict[str, Any]:
        """``{keyid: public key}`` for :func:`verify_bundle`."""
        return {self.keyid: self.public_key}

    def secret_fragments(self) -> list[str]:
        """See :func:`secret_fragments`."""
        return secret_fragments(self.private_path)


def secret_fragments(private_path: Path) -> list[str]:
    """Substrings that must never leak: PEM body lines and the raw 32-byte seed encodings."""
    pem = private_path.read_text()
    body = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    seed = base64.b64decode("".join(body))[-32:]  # PKCS#8 Ed25519: the seed comes last
    return [*body, seed.hex(), base64.b64encode(seed).decode()]


def read_envelope(bundle: Path) -> dict[str, Any]:
    """The envelope JSON of ``bundle``."""
    document: dict[str, Any] = json.loads((bundle / ENVELOPE_NAME).read_text())
    return document


def write_envelope(bundle: Path, document: Mapping[str, Any]) -> None:
    """Overwrite the envelope of ``bundle`` (to tamper with it)."""
    (bundle / ENVELOPE_NAME).write_text(json.dumps(document))


def read_statement(bundle: Path) -> dict[str, Any]:
    """The decoded in-toto statement inside the envelope of ``bundle``."""
    statement: dict[str, Any] = json.loads(base64.b64decode(read_envelope(bundle)["payload"]))
    return statement
