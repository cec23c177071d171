"""Benchmark: seal and verify an evidence bundle the size a run of N gate instances leaves.

Builds a bundle in a temporary folder with, per gate instance, what a run writes: an Allure
result, the gate's evidence attachment and a fixture container (a few KB each), plus the
compressed observation, then seals it with a fresh key and verifies it, in this process (the
library calls) and through ``canarygate verify`` (a new process: import time included). Times
are printed, not asserted; the target for 3,000 gates is seal plus verify at most 1 s.

    .venv/bin/python bench/seal_verify.py [--gates 1000 3000 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from pytest_canarygate.keys import generate_keypair
from pytest_canarygate.keys import load_public_key
from pytest_canarygate.keys import load_signer
from pytest_canarygate.signing import seal_bundle
from pytest_canarygate.verify import verify_bundle

TARGET_S = 1.0


def build(root: Path, gates: int) -> tuple[Path, dict[str, object]]:
    """A bundle of ``gates`` gate instances under ``root``; its folder and a predicate."""
    bundle = root / "reports" / "bench-migration" / "alpha" / "20260101T000000.000Z-pass"
    results = bundle / "allure-results"
    results.mkdir(parents=True)
    (bundle / "observation").mkdir()
    (bundle / "observation" / "observation.json.gz").write_bytes(os.urandom(300_000))
    (bundle / "run.json").write_text(json.dumps({"gates": ["x" * 200] * gates}))
    listed = []
    for n in range(gates):
        nodeid = f"gates/test_phase1_alpha.py::test_gate_{n % 40}[session-{n:04d}]"
        (results / f"{uuid.uuid4()}-result.json").write_text(json.dumps({"n": nodeid}) * 30)
        (results / f"{uuid.uuid4()}-attachment.json").write_text("{}" + " " * 1200)
        (results / f"{uuid.uuid4()}-container.json").write_text("{}" + " " * 400)
        listed.append({"gate": f"g{n % 40}", "item": "P1-X1", "verdict": "PASS", "nodeid": nodeid})
    predicate = {
        "migration_id": "bench-migration",
        "phase": "alpha",
        "verdict": "pass",
        "scope": "complete",
        "target": {"kind": "simulated", "scenario": "bench"},
        "gates": listed,
        "counts": {"PASS": gates},
    }
    return bundle, predicate


def measure(gates: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="cg-seal-"))
    try:
        key = work / "keys" / "signing.key"
        generate_keypair(key)
        public = key.with_name("signing.key.pub.json")
        signer = load_signer(key)
        trusted = {signer.public_key.keyid: load_public_key(public)}
        bundle, predicate = build(work, gates)
        files = sum(len(names) for _, _, names in os.walk(bundle))
        t0 = time.perf_counter()
        seal_bundle(bundle, predicate, signer)
        sealed = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = verify_bundle(bundle, trusted)
        verified = time.perf_counter() - t0
        if not result.ok:
            raise SystemExit(f"the benchmark bundle does not verify: {result.problems}")
        t0 = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest_canarygate",
                "verify",
                str(bundle),
                "--key",
                str(public),
            ],
            capture_output=True,
            check=False,
        )
        cli = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"canarygate verify exited {done.returncode}")
        return {"gates": gates, "files": files, "seal": sealed, "verify": verified, "cli": cli}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gates", type=int, nargs="+", default=[1000, 3000, 10000])
    args = parser.parse_args()
    print(
        f"{'gates':>6} {'files':>6} {'seal s':>7} {'verify s':>9} {'sum s':>6} "
        f"{'target':>7} {'cli verify s':>13}"
    )
    for gates in args.gates:
        m = measure(gates)
        total = m["seal"] + m["verify"]
        target = f"<= {TARGET_S:g}" if gates <= 3000 else "-"
        missed = " MISSED" if gates <= 3000 and total > TARGET_S else ""
        print(
            f"{m['gates']:>6} {m['files']:>6} {m['seal']:>7.3f} {m['verify']:>9.3f} "
            f"{total:>6.3f} {target:>7} {m['cli']:>13.3f}{missed}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
