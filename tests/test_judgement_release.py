"""PRE-1 and PRE-5: v5's version against the release and v4's, the build evidence against the
deployed v5; the versions and the JUnit conventions they rest on, and the [release] setting."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import pytest
from test_gates_units import NOW_MS
from test_gates_units import Fleet
from test_gates_units import judge

from pytest_canarygate.agtmux.judgement import build_verified
from pytest_canarygate.agtmux.judgement import v5_release
from pytest_canarygate.agtmux.providers.junit import parse_junit
from pytest_canarygate.agtmux.records import BuildCheck
from pytest_canarygate.agtmux.records import BuildResult
from pytest_canarygate.agtmux.records import RecordError
from pytest_canarygate.agtmux.settings import AgtmuxSettings
from pytest_canarygate.agtmux.settings import Release
from pytest_canarygate.agtmux.settings import parse_settings
from pytest_canarygate.agtmux.versions import parse_version
from pytest_canarygate.config import TableReader
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.verdicts import Verdict

DEPLOYED_MS = 1_795_564_800_000  # 2026-11-25T00:00Z
DAY = 86_400_000

# --- versions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ordered",
    [
        # semver's own example, lowest first
        ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
         "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"],
        ["0.0.4", "0.1.0-rc.1", "0.1.0", "0.1.1", "0.2.0", "0.10.0", "1.0.0", "10.0.0"],
    ],
)  # fmt: skip
def test_versions_order_by_semver_precedence(ordered: list[str]) -> None:
    parsed = [parse_version(text) for text in ordered]
    assert all(v is not None for v in parsed)
    assert sorted(parsed, key=lambda v: v) == parsed
    for lower, higher in pairwise(parsed):
        assert lower < higher
        assert not higher < lower


def test_build_metadata_does_not_order() -> None:
    assert parse_version("0.1.0+abc") == parse_version("0.1.0+def")
    assert not parse_version("0.1.0+abc") < parse_version("0.1.0")


@pytest.mark.parametrize(
    "text",
    ["", "0.1", "v0.1.0", "0.1.0.0", "01.1.0", "0.01.0", "0.1.0-", "0.1.0-01", "0.1.0+",
     "0.1.0-a..b", " 0.1.0", "0.1.0\n", "\u0660.\u0661.\u0660", "1" * 300 + ".0.0",
     None, 1, ["0.1.0"]],
)  # fmt: skip
def test_malformed_versions_are_refused(text: object) -> None:
    assert parse_version(text) is None


# --- PRE-1 -----------------------------------------------------------------------------------


def test_v5_at_the_release_and_newer_than_v4_passes() -> None:
    judged = v5_release("0.0.4", "0.1.0", "0.1.0", release_from="[release] v5_version")
    assert judged.verdict is Verdict.PASS
    assert judged.message == (
        "v5 daemon.info reports the release 0.1.0 ([release] v5_version), newer than v4's 0.0.4"
    )


@pytest.mark.parametrize(
    ("v4", "v5", "release", "fragment"),
    [
        ("0.0.4", "0.0.3", "0.0.3", "reports 0.0.3, older than v4's 0.0.4: a downgrade"),
        ("0.1.0", "0.1.0", "0.1.0", "the same release as v4's 0.1.0"),
        ("0.1.0", "0.1.0+b", "0.1.0+b", "the same release as v4's 0.1.0"),
        ("0.1.0", "0.1.0-rc.1", "0.1.0-rc.1", "older than v4's 0.1.0"),
        ("0.0.4", "0.1.1", "0.1.0", "reports 0.1.1, not the release 0.1.0 (cfg)"),
        ("0.0.4", "0.1.0", "v0.1.0", "not the release v0.1.0"),
        ("0.0.4", "banana", "0.1.0", "v5 daemon.info version 'banana' is not a version"),
        ("0.0.4", None, "0.1.0", "v5 daemon.info version None is not a version"),
        ("0.0.4", 1, "0.1.0", "version 1 is not a version"),
    ],
)
def test_a_downgrade_an_unexpected_or_malformed_v5_fails(
    v4: object, v5: object, release: str, fragment: str
) -> None:
    judged = v5_release(v4, v5, release, release_from="cfg")
    assert judged.verdict is Verdict.FAIL
    assert fragment in judged.message


def test_without_a_release_or_a_v4_version_it_is_not_shown() -> None:
    nothing = v5_release("0.0.4", "0.1.0", None, release_from="the build evidence")
    assert nothing.verdict is Verdict.INCONCLUSIVE
    assert "no release to compare it with: the build evidence names none" in nothing.message
    odd_v4 = v5_release("4.x", "0.1.0", "0.1.0", release_from="cfg")
    assert odd_v4.verdict is Verdict.INCONCLUSIVE
    assert "v4's daemon.info version '4.x' is not a version" in odd_v4.message


def test_the_configured_release_decides_over_the_build_evidence() -> None:
    fleet = Fleet.healthy()
    configured = AgtmuxSettings(release=Release("0.2.0"))
    verdict, message, _ = judge("prereq.v5-deployed", fleet, configured)
    assert verdict is Verdict.FAIL
    assert "reports 0.1.0, not the release 0.2.0 ([release] v5_version)" in message
    # the release named, the build evidence is not needed
    verdict, _, _ = judge(
        "prereq.v5-deployed", Fleet.healthy().unserved("build_result"), replace(configured,
        release=Release("0.1.0"))
    )  # fmt: skip
    assert verdict is Verdict.PASS
    verdict, _, evidence = judge("prereq.v5-deployed", Fleet.healthy())
    assert verdict is Verdict.PASS
    assert "the build evidence's agtmux.version" in str(evidence.__dict__)


def test_release_setting_is_strict() -> None:
    def read(table: dict[str, object]) -> AgtmuxSettings:
        return parse_settings(TableReader("canarygate.toml", table))

    assert read({"release": {"v5_version": "0.1.0-rc.2"}}).release == Release("0.1.0-rc.2")
    assert read({}).release == Release(None)
    for bad in ("v0.1.0", "0.1", "", 1):
        with pytest.raises(ConfigError, match=r"release\.v5_version"):
            read({"release": {"v5_version": bad}})
    with pytest.raises(ConfigError, match=r"unknown key 'release\.v4_version'"):
        read({"release": {"v4_version": "0.0.4"}})


# --- PRE-5 -----------------------------------------------------------------------------------

GOOD = BuildResult(
    700,
    0,
    0,
    0,
    (),
    version="0.1.0",
    commit="5e1f0c2",
    started_at_ms=DEPLOYED_MS + 60_000,
    checks=(BuildCheck("clippy", "passed"), BuildCheck("fmt", "passed")),
    crates=("a", "b", "c", "d", "e", "f"),
)


def verified(build: BuildResult = GOOD, **changes: object) -> tuple[Verdict, str]:
    judged = build_verified(
        replace(build, **changes),
        deployed_version="0.1.0",
        deployed_at_ms=DEPLOYED_MS,
    )
    return judged.verdict, judged.message


def test_a_full_verify_of_the_deployed_version_after_the_deployment_passes() -> None:
    verdict, message = verified()
    assert verdict is Verdict.PASS
    assert message == (
        "v5 build passes (700 tests: 700 passed, 0 failed, 0 errors, 0 skipped); for 0.1.0, "
        "commit 5e1f0c2 as deployed, run 2026-11-25T00:01Z (v5 started 2026-11-25T00:00Z), "
        "fmt and clippy passed, 6 crates"
    )
    # run at the very moment of the deployment: not older
    assert verified(started_at_ms=DEPLOYED_MS)[0] is Verdict.PASS


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"version": "0.1.0-rc.1"}, "the build evidence is for 0.1.0-rc.1, v5 daemon.info"),
        ({"version": "0.1.0+other"}, "the build evidence is for 0.1.0+other"),
        ({"checks": (BuildCheck("fmt", "passed"),)}, "the build evidence has no clippy result"),
        ({"checks": ()}, "no fmt result; the build evidence has no clippy result"),
        ({"checks": (BuildCheck("clippy", "failed"), BuildCheck("fmt", "passed"))},
         "clippy failed"),
        ({"checks": (BuildCheck("clippy", "skipped"), BuildCheck("fmt", "passed"))},
         "clippy skipped"),
        ({"crates": ("a", "b", "c", "d", "e")}, "5 crates with a passing test (a, b, c, d, e)"),
        ({"crates": ()}, "0 crates with a passing test (none), need 6"),
        ({"started_at_ms": DEPLOYED_MS - 1}, "the build ran at 2026-11-24T23:59:59Z, 0s before"),
        ({"started_at_ms": DEPLOYED_MS - 2 * DAY}, "48h before v5 was deployed"),
        ({"tests": 400}, "too few tests"),
        ({"failures": 1, "failing": ("a::t",)}, "v5 build fails (700 tests: 699 passed, 1 failed"),
        # a version unknown does not hide a failure found
        ({"version": None, "checks": ()}, "the build evidence names no version"),
    ],
)  # fmt: skip
def test_build_evidence_not_for_the_deployment_fails(
    changes: dict[str, object], fragment: str
) -> None:
    verdict, message = verified(**changes)
    assert verdict is Verdict.FAIL
    assert fragment in message


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"version": None}, "the build evidence names no version (agtmux.version property)"),
        ({"started_at_ms": None}, "the build evidence has no timestamp"),
    ],
)
def test_build_evidence_that_does_not_say_what_it_is_for_is_inconclusive(
    changes: dict[str, object], fragment: str
) -> None:
    verdict, message = verified(**changes)
    assert verdict is Verdict.INCONCLUSIVE
    assert fragment in message


def test_the_crates_threshold_is_the_configured_one() -> None:
    judged = build_verified(
        GOOD, deployed_version="0.1.0", deployed_at_ms=DEPLOYED_MS, min_crates=9
    )
    assert judged.verdict is Verdict.FAIL
    assert "6 crates with a passing test (a, b, c, d, e, f), need 9" in judged.message


def test_build_gate_judges_against_v5s_start_and_version() -> None:
    older = Fleet.healthy().one("build_result", started_at_ms=NOW_MS - 30 * DAY)
    verdict, message, _ = judge("prereq.build-passes", older)
    assert verdict is Verdict.FAIL
    assert "20d before v5 was deployed" in message
    other = Fleet.healthy()
    other.calls["v5"]["daemon.info"]["version"] = "0.1.1"
    verdict, message, _ = judge("prereq.build-passes", other)
    assert verdict is Verdict.FAIL
    assert "the build evidence is for 0.1.0, v5 daemon.info reports '0.1.1'" in message


# --- the JUnit conventions -------------------------------------------------------------------


def report(body: str, *, root: str = "testsuites", attributes: str = "") -> bytes:
    return f"<{root} {attributes}>{body}</{root}>".encode()


VERIFY = (
    '<testsuite name="just-verify"><testcase classname="just-verify" name="fmt"/>'
    '<testcase classname="just-verify" name="clippy"/></testsuite>'
)
PROPS = (
    '<properties><property name="agtmux.version" value="0.1.0"/>'
    '<property name="agtmux.commit" value="5e1f0c2a"/><property name="other" value=""/>'
    "</properties>"
)


def crate(name: str, *cases: str) -> str:
    return f'<testsuite name="{name}">' + "".join(
        f'<testcase classname="{name}" name="{c}">' + ("<failure/>" if c.startswith("x") else "")
        + "</testcase>" for c in cases
    ) + "</testsuite>"  # fmt: skip


def test_junit_carries_version_commit_time_checks_and_crates() -> None:
    body = PROPS + VERIFY + crate("core", "a", "b") + crate("daemon::bin/agtmux", "c")
    result = parse_junit(report(body, attributes='timestamp="2026-11-25T00:01:00.5+00:00"'))
    assert (result.version, result.commit) == ("0.1.0", "5e1f0c2a")
    assert result.started_at_ms == DEPLOYED_MS + 60_500
    assert result.checks == (BuildCheck("clippy", "passed"), BuildCheck("fmt", "passed"))
    assert result.crates == ("core", "daemon")
    assert result.tests == 3  # the checks are not tests
    assert result.passed == 3


def test_junit_failing_checks_and_crates_without_a_passing_test() -> None:
    body = (
        '<testsuite name="just-verify"><testcase name="clippy"><failure/></testcase>'
        '<testcase name="fmt"><skipped/></testcase></testsuite>'
        + crate("core", "a", "xb")
        + crate("gateway", "xc")
    )
    result = parse_junit(report(body))
    assert result.checks == (BuildCheck("clippy", "failed"), BuildCheck("fmt", "skipped"))
    assert "just-verify::clippy" in result.failing
    assert result.crates == ("core",)  # gateway's only test failed
    assert (result.version, result.commit, result.started_at_ms) == (None, None, None)
    # a check repeated: its worst run counts
    twice = parse_junit(
        report(VERIFY + VERIFY.replace('name="fmt"/>', 'name="fmt"><error/></testcase>'))
    )
    assert dict((c.name, c.outcome) for c in twice.checks)["fmt"] == "failed"


def test_junit_properties_only_count_on_the_root() -> None:
    nested = '<testsuite name="core">' + PROPS + '<testcase name="a"/></testsuite>'
    assert parse_junit(report(nested)).version is None
    single = parse_junit(report(PROPS + '<testcase name="a"/>', root="testsuite"))
    assert single.version == "0.1.0"


@pytest.mark.parametrize(
    ("body", "attributes", "problem"),
    [
        ('<properties><property name="agtmux.version" value=""/></properties>', "",
         "properties[agtmux.version]: expected a non-empty value"),
        ('<properties><property name="agtmux.version"/></properties>', "",
         "properties[agtmux.version]"),
        ('<properties><property name="agtmux.version" value="0.1.0"/>'
         '<property name="agtmux.version" value="0.2.0"/></properties>', "",
         "given twice: '0.1.0' and '0.2.0'"),
        ('<properties><property name="agtmux.commit" value="main"/></properties>', "",
         "properties[agtmux.commit]: expected 7 to 64 hex digits"),
        ("", 'timestamp="2026-11-25T00:01:00"', "@timestamp: '2026-11-25T00:01:00' has no UTC"),
        ("", 'timestamp="yesterday"', "@timestamp: not an ISO 8601 time"),
    ],
)  # fmt: skip
def test_junit_conventions_are_strict(body: str, attributes: str, problem: str) -> None:
    with pytest.raises(RecordError, match=problem.replace("[", r"\[").replace("(", r"\(")):
        parse_junit(report(body, attributes=attributes))
