"""Prerequisites: what must hold before the migration starts (judged at alpha entry).

Runbook: "Prerequisites". The restore dry-run is recomputed here from the snapshot metadata, the
live v5 projection version and the observation's clock; the daemon's own verdict is never taken.
"""

from __future__ import annotations

from pytest_canarygate import ObservedView
from pytest_canarygate import gate
from pytest_canarygate.agtmux.gate_support import conclude
from pytest_canarygate.agtmux.gate_support import evidence_of
from pytest_canarygate.agtmux.gate_support import one_of
from pytest_canarygate.agtmux.gate_support import projection_version
from pytest_canarygate.agtmux.gate_support import restore_dry_run_now
from pytest_canarygate.agtmux.judgement import backup_snapshot
from pytest_canarygate.agtmux.judgement import build_passes
from pytest_canarygate.agtmux.judgement import periodic_snapshot_fresh
from pytest_canarygate.agtmux.judgement import startup_order_matches
from pytest_canarygate.agtmux.providers import BuildResult
from pytest_canarygate.agtmux.providers import SnapshotMetadata
from pytest_canarygate.agtmux.providers import SupervisorStatus
from pytest_canarygate.agtmux.records import datetime_to_ms
from pytest_canarygate.config import CanarygateConfig


@gate("prereq.startup-order")
def test_supervisor_startup_order_verified(observed: ObservedView) -> None:
    status = one_of(observed, "supervisor_status", SupervisorStatus)
    conclude(observed, "startup order", startup_order_matches(status.startup_order))


@gate("prereq.snapshot-infrastructure")
def test_snapshot_infrastructure_operational(
    observed: ObservedView, canarygate_settings: CanarygateConfig
) -> None:
    snapshots = evidence_of(observed, "snapshots", SnapshotMetadata).records
    interval = canarygate_settings.thresholds.snapshot_interval_ms
    judged = periodic_snapshot_fresh(snapshots, datetime_to_ms(observed.now), interval)
    conclude(observed, "periodic snapshots", judged)


@gate("prereq.restore-dry-run")
def test_restore_dry_run_passing(
    observed: ObservedView, canarygate_settings: CanarygateConfig
) -> None:
    conclude(observed, "restore dry-run", restore_dry_run_now(observed, canarygate_settings))


@gate("prereq.build-passes")
def test_v5_build_passes_its_tests(
    observed: ObservedView, canarygate_settings: CanarygateConfig
) -> None:
    build = one_of(observed, "build_result", BuildResult)
    judged = build_passes(build, canarygate_settings.thresholds.min_build_tests)
    conclude(observed, "build", judged)


@gate("prereq.backup-taken")
def test_backup_taken_before_migration(observed: ObservedView) -> None:
    snapshots = evidence_of(observed, "snapshots", SnapshotMetadata).records
    live = projection_version(observed.daemon("v5"))
    judged = backup_snapshot(snapshots, datetime_to_ms(observed.now), live)
    conclude(observed, "backup", judged)
