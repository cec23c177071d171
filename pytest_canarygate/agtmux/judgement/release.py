"""What is deployed against what was meant to be: v5's version against the release and v4's
(PRE-1), and the build evidence against the deployed v5 (PRE-5: its version, fmt and clippy,
the crates it covers, and that it is not older than the deployment)."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_canarygate.agtmux.judgement.core import Judgement
from pytest_canarygate.agtmux.judgement.core import _judgement
from pytest_canarygate.agtmux.judgement.core import format_duration
from pytest_canarygate.agtmux.judgement.core import format_time
from pytest_canarygate.agtmux.judgement.health import build_passes
from pytest_canarygate.agtmux.records import BuildResult
from pytest_canarygate.agtmux.records import ms_to_datetime
from pytest_canarygate.agtmux.versions import parse_version
from pytest_canarygate.verdicts import Verdict

VERIFY_CHECKS = ("fmt", "clippy")
"""``just verify``'s steps besides the tests (runbook: "fmt + clippy(strict) + 456+ tests")."""
_FORM = "MAJOR.MINOR.PATCH[-pre][+build]"


def v5_release(
    v4_version: object, v5_version: object, release: str | None, *, release_from: str
) -> Judgement:
    """PRE-1: v5's ``daemon.info.version`` is exactly ``release`` (named by ``release_from``)
    and newer than v4's by semver precedence. A v5 version that is missing or malformed, not
    the release, or not newer than v4's (a downgrade, or the same) FAILs; no release to compare
    with, or a v4 version that is not one, is INCONCLUSIVE."""
    numbers = {"v4": v4_version, "v5": v5_version, "release": release, "from": release_from}
    v5 = parse_version(v5_version)
    if v5 is None:
        return _judgement(
            Verdict.FAIL,
            f"v5 daemon.info version {v5_version!r} is not a version ({_FORM})",
            **numbers,
        )
    if release is None:
        return _judgement(
            Verdict.INCONCLUSIVE,
            f"v5 daemon.info reports {v5}, but there is no release to compare it with: "
            f"{release_from} names none",
            **numbers,
        )
    if v5.text != release:
        return _judgement(
            Verdict.FAIL,
            f"v5 daemon.info reports {v5}, not the release {release} ({release_from}): an "
            "unexpected version is deployed",
            **numbers,
        )
    v4 = parse_version(v4_version)
    if v4 is None:
        return _judgement(
            Verdict.INCONCLUSIVE,
            f"v5 reports the release {v5}, but v4's daemon.info version {v4_version!r} is not a "
            f"version ({_FORM}): v5 is not shown to be newer",
            **numbers,
        )
    if not v4 < v5:
        what = "the same release as" if v4 == v5 else "older than"
        return _judgement(
            Verdict.FAIL,
            f"v5 daemon.info reports {v5}, {what} v4's {v4}: a downgrade, not an upgrade",
            **numbers,
        )
    return _judgement(
        Verdict.PASS,
        f"v5 daemon.info reports the release {v5} ({release_from}), newer than v4's {v4}",
        **numbers,
    )


def build_verified(
    build: BuildResult,
    *,
    deployed_version: object,
    deployed_at_ms: int,
    min_tests: int = 456,
    min_crates: int = 6,
    checks: Sequence[str] = VERIFY_CHECKS,
) -> Judgement:
    """PRE-5 "All 6 crates pass ``just verify``": the build evidence names the deployed v5
    version (``daemon.info.version``), its run started no earlier than the deployment
    (``deployed_at_ms``, v5's start), ``fmt`` and ``clippy`` passed, at least ``min_crates``
    crates have a passing test, and the tests pass (:func:`build_passes`). A report for
    another version, lacking or failing a check, covering fewer crates, older than the
    deployment or failing tests FAILs; one that does not say its version or time is
    INCONCLUSIVE."""
    tests = build_passes(build, min_tests)
    outcomes = {c.name: c.outcome for c in build.checks}
    numbers = {
        **tests.numbers,
        "version": build.version,
        "deployed_version": deployed_version,
        "commit": build.commit,
        "started_at_ms": build.started_at_ms,
        "deployed_at_ms": deployed_at_ms,
        "checks": outcomes,
        "crates": list(build.crates),
        "min_crates": min_crates,
    }
    failed: list[str] = [] if tests.passed else [tests.message]
    unknown: list[str] = []
    if build.version is None:
        unknown.append("the build evidence names no version (agtmux.version property)")
    elif build.version != deployed_version:
        failed.append(
            f"the build evidence is for {build.version}, v5 daemon.info reports "
            f"{deployed_version!r}"
        )
    deployed = format_time(ms_to_datetime(deployed_at_ms))
    if build.started_at_ms is None:
        unknown.append("the build evidence has no timestamp: its age is not shown")
    elif build.started_at_ms < deployed_at_ms:
        before = ms_to_datetime(deployed_at_ms) - ms_to_datetime(build.started_at_ms)
        failed.append(
            f"the build ran at {format_time(ms_to_datetime(build.started_at_ms))}, "
            f"{format_duration(before)} before v5 was deployed (started {deployed})"
        )
    for check in checks:
        outcome = outcomes.get(check)
        if outcome is None:
            failed.append(f"the build evidence has no {check} result")
        elif outcome != "passed":
            failed.append(f"{check} {outcome}")
    if len(build.crates) < min_crates:
        covered = ", ".join(build.crates) or "none"
        failed.append(
            f"{len(build.crates)} crates with a passing test ({covered}), need {min_crates}"
        )
    commit = f", commit {build.commit}" if build.commit else ""
    if failed:
        message = "; ".join(failed + unknown)
        prefix = "" if message.startswith("v5 build") else "v5 build: "
        return _judgement(Verdict.FAIL, prefix + message, **numbers)
    if unknown:
        return _judgement(Verdict.INCONCLUSIVE, "v5 build: " + "; ".join(unknown), **numbers)
    return _judgement(
        Verdict.PASS,
        f"{tests.message}; for {build.version}{commit} as deployed, run "
        f"{format_time(ms_to_datetime(build.started_at_ms or 0))} (v5 started {deployed}), "
        f"{' and '.join(checks)} passed, {len(build.crates)} crates",
        **numbers,
    )
