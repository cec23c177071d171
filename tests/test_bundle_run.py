"""The bundle a run leaves: sealed once, complete under xdist, incomplete when a worker dies."""

from __future__ import annotations

import fnmatch
import json
import sys

import pytest
from gate_repo import make_gate_repo
from gate_repo import one_item_catalog
from gate_repo import only_run
from gate_repo import write_gates

from pytest_canarygate.keys import generate_keypair
from pytest_canarygate.keys import load_public_key
from pytest_canarygate.signing import ENVELOPE_NAME
from pytest_canarygate.verify import Status
from pytest_canarygate.verify import verify_bundle


def test_xdist_run_yields_one_complete_verifiable_bundle(pytester: pytest.Pytester) -> None:
    key = pytester.path / "k" / "signing.key"
    keyid = generate_keypair(key)
    make_gate_repo(pytester)
    result = pytester.runpytest_subprocess(
        "--phase=alpha", "--canarygate-sim=healthy", "-n", "2", "--canarygate-key", str(key)
    )
    assert result.ret == 0
    bundle, run = only_run(pytester.path)
    assert run["incomplete"] == []
    verdict = verify_bundle(bundle, {keyid: load_public_key(key.with_name("signing.key.pub.json"))})
    assert verdict.status is Status.VALID, verdict.problems
    statement = verdict.statement
    assert statement is not None
    subjects = {s["name"] for s in statement["subject"]}
    results = {p.name for p in (bundle / "allure-results").glob("*-result.json")}
    # one result file per gate instance, all of them covered by the signature
    assert len(results) == len(run["gates"])
    assert {f"allure-results/{name}" for name in results} <= subjects
    assert "observation/observation.json.gz" in subjects
    assert "run.json" in subjects
    predicate = statement["predicate"]
    assert predicate["scope"] == "complete"
    assert predicate["target"] == {"kind": "simulated", "scenario": "healthy"}
    assert predicate["signer"]["ephemeral"] is False
    assert {g["verdict"] for g in predicate["gates"]} == {"PASS"}


def test_one_changed_byte_fails_verify_naming_the_file(pytester: pytest.Pytester) -> None:
    key = pytester.path / "k" / "signing.key"
    generate_keypair(key)
    make_gate_repo(pytester)
    pytester.runpytest_subprocess(
        "--phase=alpha", "--canarygate-sim=healthy", "--canarygate-key", str(key)
    )
    bundle, _ = only_run(pytester.path)
    target = bundle / "observation" / "observation.json.gz"
    data = bytearray(target.read_bytes())
    data[10] ^= 1
    target.write_bytes(bytes(data))
    result = pytester.run(
        sys.executable,
        "-m",
        "pytest_canarygate",
        "verify",
        str(bundle),
        "--key",
        str(key.with_name("signing.key.pub.json")),
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*observation/observation.json.gz: sha256 mismatch*"])


CRASH_CATALOG = one_item_catalog(("crash.gate", "v5:daemon.info"), ("fine.gate", "v5:daemon.info"))


def test_worker_killed_under_a_gate_makes_the_bundle_incomplete(
    pytester: pytest.Pytester,
) -> None:
    write_gates(
        pytester,
        CRASH_CATALOG,
        "import os, signal\nfrom pytest_canarygate import gate\n\n"
        "@gate('crash.gate')\ndef test_crash(canarygate_observed):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n\n"
        "@gate('fine.gate')\ndef test_fine(canarygate_observed):\n"
        "    assert canarygate_observed.daemon('v5').result('daemon.info')['pid'] > 0\n",
        name="test_crash.py",
    )
    result = pytester.runpytest_subprocess(
        "--phase=alpha", "--canarygate-sim=healthy", "-n", "2", "--max-worker-restart=1"
    )
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        ["*INCOMPLETE*test_crash*", "*NOT PROMOTABLE: the bundle is incomplete*"]
    )
    bundle, run = only_run(pytester.path)
    assert bundle.name.endswith("-incomplete")
    assert any("test_crash" in problem for problem in run["incomplete"])
    verdicts = {g["nodeid"].split("::")[1]: g["verdict"] for g in run["gates"]}
    assert verdicts == {"test_crash": "FAIL", "test_fine": "PASS"}
    statement = json.loads((bundle / ENVELOPE_NAME).read_text())
    assert statement["payloadType"] == "application/vnd.in-toto+json"


#: Two gates that pass: what happens to test_crash's files is up to each test's conftest.
TWO_PASSING_GATES = (
    "from pytest_canarygate import gate\n\n"
    "@gate('crash.gate')\ndef test_crash(canarygate_observed):\n"
    "    assert canarygate_observed.daemon('v5').result('daemon.info')['pid'] > 0\n\n"
    "@gate('fine.gate')\ndef test_fine(canarygate_observed):\n"
    "    assert canarygate_observed.daemon('v5').result('daemon.info')['pid'] > 0\n"
)

LOSE_RESULT = """
import time

import pytest

@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    # a result file lost after it was written (a full disk, a careless cleanup); the files
    # are written by a helper process, so wait until it is there
    if call.when == "teardown" and item.name == "test_crash":
        for key, name in report.user_properties:
            if key == "canarygate_allure_result":
                path = (item.config.rootpath / "reports").joinpath(*_run_dir(item)).joinpath(
                    "allure-results", name
                )
                deadline = time.monotonic() + 60
                while not path.exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
                path.unlink()
    return report

def _run_dir(item):
    [run] = (item.config.rootpath / "reports").glob("*/alpha/*-running")
    return run.relative_to(item.config.rootpath / "reports").parts
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_gate_whose_result_file_is_gone_makes_the_bundle_incomplete(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    write_gates(pytester, CRASH_CATALOG, TWO_PASSING_GATES, name="test_crash.py")
    (pytester.path / "conftest.py").write_text(LOSE_RESULT)
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy", *workers)
    assert result.ret != 0
    bundle, run = only_run(pytester.path)
    assert bundle.name.endswith("-incomplete")
    [problem] = run["incomplete"]
    assert "test_crash" in problem
    assert problem.endswith("reported but has no result file")
    verdicts = {g["nodeid"].split("::")[1]: g["verdict"] for g in run["gates"]}
    assert verdicts == {"test_crash": "PASS", "test_fine": "PASS"}


CLASHING_ATTACHMENT = """
import uuid

import pytest

import pytest_canarygate.allure_results as allure_results

CLASH = uuid.UUID("00000000-0000-4000-8000-00000000c1a5")


class _Clashing:
    @staticmethod
    def uuid4():
        return CLASH


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item):
    # test_crash's attachment is named as a file already there (a name clash, a file left by
    # something else): it must not be overwritten, and no result may name it
    allure_results.uuid = _Clashing if item.name == "test_crash" else uuid
    if item.name == "test_crash":
        [run] = (item.config.rootpath / "reports").glob("*/alpha/*-running")
        (run / "allure-results").mkdir(exist_ok=True)
        (run / "allure-results" / f"{CLASH}-attachment.json").write_text("not the gate's")
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_result_that_cannot_be_written_makes_the_bundle_incomplete(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    write_gates(pytester, CRASH_CATALOG, TWO_PASSING_GATES, name="test_crash.py")
    (pytester.path / "conftest.py").write_text(CLASHING_ATTACHMENT)
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy", *workers)
    assert result.ret != 0
    # said once, by the controller (a worker hands what it could not write to it)
    said = "canarygate: could not write allure-results/*00000000c1a5-attachment.json: File exists"
    result.stdout.fnmatch_lines([said])
    assert len(fnmatch.filter(result.outlines, said)) == 1
    bundle, run = only_run(pytester.path)
    assert bundle.name.endswith("-incomplete")
    assert sorted(run["incomplete"]) == [
        "could not write allure-results/00000000-0000-4000-8000-00000000c1a5-attachment.json:"
        " File exists",
        "gates/test_crash.py::test_crash: reported but has no result file",
    ]
    clashed = bundle / "allure-results" / "00000000-0000-4000-8000-00000000c1a5-attachment.json"
    assert clashed.read_text() == "not the gate's"
    assert not clashed.with_name(clashed.name.replace("attachment", "result")).exists()
    verdicts = {g["nodeid"].split("::")[1]: g["verdict"] for g in run["gates"]}
    assert verdicts == {"test_crash": "PASS", "test_fine": "PASS"}


def test_simulator_run_without_key_uses_an_ephemeral_key_kept_beside_the_bundle(
    pytester: pytest.Pytester,
) -> None:
    make_gate_repo(pytester)
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy")
    result.stdout.fnmatch_lines(["*signed with an ephemeral key*demo only, never sign-off*"])
    bundle, _ = only_run(pytester.path)
    public = bundle.with_name(bundle.name + ".ephemeral.pub.json")
    assert public.is_file()
    assert not list(bundle.rglob("*.pub.json"))
    key = load_public_key(public)
    verdict = verify_bundle(bundle, {key.keyid: key})
    assert verdict.status is Status.VALID, verdict.problems
    assert verdict.predicate is not None
    assert verdict.predicate["signer"]["ephemeral"] is True
