"""Prerequisites: what must hold before the migration starts (judged at alpha entry).

Runbook: "Prerequisites". The restore dry-run is recomputed here from the snapshot metadata, the
live v5 projection version and the observation's clock; the daemon's own verdict is never taken.
v5 is deployed when it reports the release ([release] v5_version, else the version the build
evidence names), newer than v4's; the build evidence must be for that version and the
deployment, with fmt, clippy, the crates and the tests (docs/operations-contract.md).
"""

from __future__ import annotations

from datetime import datetime

from pytest_canarygate.agtmux.gate_api import AgtmuxSettings
from pytest_canarygate.agtmux.gate_api import BuildResult
from pytest_canarygate.agtmux.gate_api import CustodyView
from pytest_canarygate.agtmux.gate_api import ObservedView
from pytest_canarygate.agtmux.gate_api import SnapshotMetadata
from pytest_canarygate.agtmux.gate_api import backup_snapshot
from pytest_canarygate.agtmux.gate_api import build_verified
from pytest_canarygate.agtmux.gate_api import conclude
from pytest_canarygate.agtmux.gate_api import daemon_info
from pytest_canarygate.agtmux.gate_api import daemon_uptime
from pytest_canarygate.agtmux.gate_api import datetime_to_ms
from pytest_canarygate.agtmux.gate_api import evidence_of
from pytest_canarygate.agtmux.gate_api import gate
from pytest_canarygate.agtmux.gate_api import one_of
from pytest_canarygate.agtmux.gate_api import periodic_snapshot_fresh
from pytest_canarygate.agtmux.gate_api import projection_version
from pytest_canarygate.agtmux.gate_api import restore_dry_run_now
from pytest_canarygate.agtmux.gate_api import startup_order_shown
from pytest_canarygate.agtmux.gate_api import v5_release


@gate("prereq.v5-deployed")
def test_v5_daemon_is_deployed_at_the_release(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    versions = {
        name: daemon_info(canarygate_observed.daemon(name)).get("version") for name in ("v4", "v5")
    }
    canarygate_observed.note("versions", versions)
    release, release_from = agtmux_settings.release.v5_version, "[release] v5_version"
    if release is None:
        build = one_of(canarygate_observed, "build_result", BuildResult)
        release = build.version
        release_from = "[release] v5_version unset, so the build evidence's agtmux.version"
    judged = v5_release(versions["v4"], versions["v5"], release, release_from=release_from)
    conclude(canarygate_observed, "release", judged)


@gate("prereq.startup-order", "contract.startup-order")
def test_supervisor_startup_order_verified(canarygate_observed: ObservedView) -> None:
    """PRE-2 and the contract's SC-1 ask the same: the startup order the supervisor showed."""
    conclude(canarygate_observed, "startup order", startup_order_shown(canarygate_observed))


@gate("prereq.snapshot-infrastructure")
def test_snapshot_infrastructure_operational(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    snapshots = evidence_of(canarygate_observed, "snapshots", SnapshotMetadata).records
    interval = agtmux_settings.thresholds.snapshot_interval_ms
    judged = periodic_snapshot_fresh(snapshots, datetime_to_ms(canarygate_observed.now), interval)
    conclude(canarygate_observed, "periodic snapshots", judged)


@gate(
    "prereq.restore-dry-run",
    "alpha.exit.restore-dry-run",
    "canary.pre.restore-dry-run",
    "cutover.final-snapshot",
)
def test_restore_dry_run_passes_on_the_newest_snapshot(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    """One check the runbook asks for four times: before alpha (PRE-4), at its exit (P1-X3),
    before canary (P2-C2) and as the final snapshot before decommissioning v4 (P4-S3). Each
    phase runs it under its own gate and item."""
    conclude(
        canarygate_observed,
        "restore dry-run",
        restore_dry_run_now(canarygate_observed, agtmux_settings),
    )


@gate("prereq.build-passes")
def test_v5_build_passes_its_tests(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    build = one_of(canarygate_observed, "build_result", BuildResult)
    v5 = canarygate_observed.daemon("v5")
    started = canarygate_observed.now - daemon_uptime(v5, canarygate_observed.now)
    judged = build_verified(
        build,
        deployed_version=daemon_info(v5).get("version"),
        deployed_at_ms=datetime_to_ms(started),
        min_tests=agtmux_settings.thresholds.min_build_tests,
        min_crates=agtmux_settings.thresholds.min_build_crates,
    )
    conclude(canarygate_observed, "build", judged)


@gate("prereq.backup-taken")
def test_backup_taken_before_migration(
    canarygate_observed: ObservedView,
    canarygate_custody: CustodyView,
    agtmux_settings: AgtmuxSettings,
) -> None:
    """Before the migration's start, which is its first archived alpha run (this run, when
    the archive holds none), and no older than [windows] backup_max_age_days before it."""
    snapshots = evidence_of(canarygate_observed, "snapshots", SnapshotMetadata).records
    live = projection_version(canarygate_observed.daemon("v5"))
    start = canarygate_custody.custody.soak.get("migration_start")
    judged = backup_snapshot(
        snapshots,
        datetime_to_ms(canarygate_observed.now),
        live,
        start_ms=datetime_to_ms(datetime.fromisoformat(start)) if start else None,
        max_age_ms=int(agtmux_settings.windows.backup_max_age_days * 86_400_000),
    )
    conclude(canarygate_observed, "backup", judged)
