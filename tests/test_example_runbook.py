"""A second runbook (examples/kvstore) runs through the same engine, without the agtmux pack.

Its daemons are real processes on real Unix sockets; its pack, catalog and gates are the
example's own files, copied as they are.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from gate_repo import only_run

from pytest_canarygate.keys import generate_keypair
from pytest_canarygate.keys import load_public_key
from pytest_canarygate.verify import verify_bundle

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "kvstore"
KEYS = {"users/ada": "1", "users/bob": "2", "orders/7": "open"}
XDIST = pytest.mark.parametrize("dist", [[], ["-n", "2"]], ids=["no-xdist", "xdist-2"])


class KvFleet:
    """An old and a new kvd, each on its own socket in its own 0700 folder."""

    def __init__(self, old_keys: dict[str, str], new_keys: dict[str, str], new_version: str):
        self.root = Path(tempfile.mkdtemp(prefix="cg-kv-"))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.endpoints: dict[str, str] = {}
        for name, keys, version in (("old", old_keys, "1.4.0"), ("new", new_keys, new_version)):
            data = self.root / f"{name}.json"
            data.write_text(json.dumps(keys))
            socket = self.root / name / "kvd.sock"
            process = subprocess.Popen(
                [
                    *(sys.executable, str(EXAMPLE / "kvd.py"), "--socket", str(socket)),
                    *("--version", version, "--data", str(data)),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            self.processes.append(process)
            assert process.stdout is not None
            assert process.stdout.readline() == b"ready\n"
            self.endpoints[name] = f"unix://{socket}"

    def config(self) -> str:
        return '[migration]\nid = "kvstore-v1-to-v2"\npack = "kvstore"\n' + "".join(
            f'[daemons.{n}]\nendpoint = "{e}"\n' for n, e in self.endpoints.items()
        )

    def stop(self) -> None:
        for process in self.processes:
            assert process.stdin is not None
            assert process.stdout is not None
            process.stdin.close()
            process.wait(timeout=10)
            process.stdout.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def example(pytester: pytest.Pytester) -> Path:
    for name in ("conftest.py", "pytest.ini", "gates"):
        source = EXAMPLE / name
        target = pytester.path / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(source, target)
    return pytester.path


def run(pytester: pytest.Pytester, fleet: KvFleet, *args: str) -> pytest.RunResult:
    (pytester.path / "canarygate.toml").write_text(fleet.config())
    key = pytester.path / "k" / "signing.key"
    generate_keypair(key)
    return pytester.runpytest_subprocess(
        "--phase=shadow", f"--canarygate-key={key}", "-p", "no:canarygate_agtmux", *args
    )


@pytest.fixture
def same_fleet() -> Iterator[KvFleet]:
    fleet = KvFleet(KEYS, KEYS, "2.0.0")
    yield fleet
    fleet.stop()


@XDIST
def test_the_example_runbook_passes_and_seals_a_verifiable_bundle(
    pytester: pytest.Pytester, example: Path, same_fleet: KvFleet, dist: list[str]
) -> None:
    result = run(pytester, same_fleet, *dist)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(["*phase shadow | migration kvstore-v1-to-v2 | target LIVE*"])
    bundle, data = only_run(pytester.path)
    assert data["pack"] == "kvstore"
    assert data["verdict"] == "pass"
    judged = sorted((g["gate"], g["param"]) for g in data["gates"])
    assert judged == [
        ("kv.namespace-parity", "orders"),
        ("kv.namespace-parity", "users"),
        ("kv.newer-version", None),
    ]
    key = load_public_key(pytester.path / "k" / "signing.key.pub.json")
    assert verify_bundle(bundle, {key.keyid: key}).ok


def test_a_drifted_key_fails_only_its_namespace(pytester: pytest.Pytester, example: Path) -> None:
    fleet = KvFleet(KEYS, {**KEYS, "users/bob": "3"}, "2.0.0")
    try:
        result = run(pytester, fleet)
    finally:
        fleet.stop()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    _, data = only_run(pytester.path)
    verdicts = {(g["gate"], g["param"]): (g["verdict"], g["message"]) for g in data["gates"]}
    assert verdicts[("kv.namespace-parity", "orders")][0] == "PASS"
    assert verdicts[("kv.namespace-parity", "users")][0] == "FAIL"
    assert "users/bob" in verdicts[("kv.namespace-parity", "users")][1]


def test_a_daemon_that_is_down_makes_its_gates_unobservable(
    pytester: pytest.Pytester, example: Path
) -> None:
    fleet = KvFleet(KEYS, KEYS, "2.0.0")
    config = fleet.config()
    fleet.stop()  # sockets gone: nothing answers
    (pytester.path / "canarygate.toml").write_text(config)
    result = pytester.runpytest_subprocess("--phase=shadow", "-p", "no:canarygate_agtmux")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    _, data = only_run(pytester.path)
    assert {g["verdict"] for g in data["gates"]} == {"UNOBSERVABLE"}
    assert [g["param"] for g in data["gates"] if g["gate"] == "kv.namespace-parity"] == [None]


def test_an_unknown_phase_of_this_runbook_is_a_usage_error(
    pytester: pytest.Pytester, example: Path, same_fleet: KvFleet
) -> None:
    (pytester.path / "canarygate.toml").write_text(same_fleet.config())
    result = pytester.runpytest_subprocess("--phase=canary", "-p", "no:canarygate_agtmux")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--phase=canary: not a phase of *; known: shadow, cutover*"])
    assert not (pytester.path / "reports").exists()


def test_with_both_packs_installed_the_config_names_the_pack(
    pytester: pytest.Pytester, example: Path, same_fleet: KvFleet
) -> None:
    (pytester.path / "canarygate.toml").write_text(same_fleet.config())
    result = pytester.runpytest_subprocess("--phase=shadow")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert only_run(pytester.path)[1]["pack"] == "kvstore"
    unnamed = same_fleet.config().replace('pack = "kvstore"\n', "")
    (pytester.path / "canarygate.toml").write_text(unnamed)
    result = pytester.runpytest_subprocess("--phase=shadow")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*several runbook packs are installed (agtmux, kvstore)*"])
