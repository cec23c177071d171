"""Judgements on the daemon's snapshots (daemon facts 4): the restore dry-run
(``RestoreDryRun::check`` recomputed) on one snapshot or the newest, and whether a snapshot was
recorded at the current state, the periodic timer is running and a backup (a Manual snapshot) was
taken.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from datetime import timedelta
from datetime import timezone

from pytest_canarygate.agtmux.judgement.core import Judgement
from pytest_canarygate.agtmux.judgement.core import RestoreDryRun
from pytest_canarygate.agtmux.judgement.core import _judgement
from pytest_canarygate.agtmux.judgement.core import format_duration
from pytest_canarygate.agtmux.records import SnapshotMetadata
from pytest_canarygate.verdicts import Verdict

SNAPSHOT_ID = re.compile(r"snap-[1-9][0-9]*")
"""``snap-{id}`` (daemon facts 4.2)."""


# --- restore dry-run ---------------------------------------------------------------------


def restore_dry_run(
    snapshot: SnapshotMetadata,
    current_version: int,
    now_ms: int,
    max_age_ms: int = 600_000,
) -> RestoreDryRun:
    """Recompute ``RestoreDryRun::check`` (daemon facts 4.5): VersionAhead (snapshot version >
    current) before TooOld (age strictly > max age; age floored at 0) before Ok."""
    age_ms = _age_ms(snapshot, now_ms)
    numbers = {
        "snapshot_id": snapshot.snapshot_id,
        "snapshot_version": snapshot.projection_version,
        "current_version": current_version,
        "created_at_ms": snapshot.created_at_ms,
        "now_ms": now_ms,
        "age_ms": age_ms,
        "max_age_ms": max_age_ms,
    }
    name = f"snapshot {snapshot.snapshot_id}"
    if snapshot.projection_version > current_version:
        outcome, verdict = "VersionAhead", Verdict.FAIL
        message = (
            f"{name}: VersionAhead {{ snapshot_version: {snapshot.projection_version}, "
            f"current_version: {current_version} }} (restoring it would go back in time; did the "
            "daemon restart since it was taken?)"
        )
    elif age_ms > max_age_ms:
        outcome, verdict = "TooOld", Verdict.FAIL
        message = (
            f"{name}: TooOld {{ age_ms: {age_ms}, max_age_ms: {max_age_ms} }} "
            f"(taken {format_duration(timedelta(milliseconds=age_ms))} ago)"
        )
    else:
        outcome, verdict = "Ok", Verdict.PASS
        message = (
            f"{name}: Ok {{ age_ms: {age_ms} }} at projection version "
            f"{snapshot.projection_version} (current {current_version})"
        )
    return RestoreDryRun(
        verdict=verdict,
        message=message,
        numbers=numbers,
        findings=(snapshot,),
        outcome=outcome,
        age_ms=age_ms,
    )


def restore_dry_run_latest(
    snapshots: Sequence[SnapshotMetadata],
    current_version: int,
    now_ms: int,
    max_age_ms: int = 600_000,
) -> Judgement:
    """The restore dry-run recomputed on the newest snapshot; no snapshot at all FAILs."""
    if not snapshots:
        return _judgement(
            Verdict.FAIL,
            "no snapshot is retained: there is nothing a restore could start from",
            snapshots=0,
            current_version=current_version,
        )
    newest = max(snapshots, key=lambda s: (s.created_at_ms, s.snapshot_id))
    return restore_dry_run(newest, current_version, now_ms, max_age_ms)


# --- snapshots taken ---------------------------------------------------------------------


def _age_ms(snapshot: SnapshotMetadata, now_ms: int) -> int:
    """Milliseconds since the snapshot, floored at 0 for a future timestamp (daemon facts 4.5)."""
    return max(0, now_ms - snapshot.created_at_ms)


def _age(snapshot: SnapshotMetadata, now_ms: int) -> timedelta:
    return timedelta(milliseconds=_age_ms(snapshot, now_ms))


def _describe_snapshot(snapshot: SnapshotMetadata, now_ms: int) -> str:
    return (
        f"{snapshot.snapshot_id} ({snapshot.trigger}, version {snapshot.projection_version}, "
        f"taken {format_duration(_age(snapshot, now_ms))} ago)"
    )


def newest_snapshot_recorded(
    snapshots: Sequence[SnapshotMetadata], now_ms: int, max_age_ms: int = 600_000
) -> Judgement:
    """A snapshot was taken at the current state: the newest one has ``snap-<n>`` metadata and
    is no older than ``max_age_ms`` (daemon facts 4.2, 4.3)."""
    if not snapshots:
        return _judgement(Verdict.FAIL, "no snapshot is retained", snapshots=0)
    newest = max(snapshots, key=lambda s: (s.created_at_ms, s.snapshot_id))
    age_ms = _age_ms(newest, now_ms)
    numbers = {
        "snapshot_id": newest.snapshot_id,
        "trigger": newest.trigger,
        "age_ms": age_ms,
        "max_age_ms": max_age_ms,
        "snapshots": len(snapshots),
    }
    shown = _describe_snapshot(newest, now_ms)
    if not SNAPSHOT_ID.fullmatch(newest.snapshot_id):
        return _judgement(
            Verdict.FAIL,
            f"newest snapshot id {newest.snapshot_id!r} is not snap-<n> metadata",
            (newest,),
            **numbers,
        )
    if age_ms > max_age_ms:
        return _judgement(
            Verdict.FAIL,
            f"newest snapshot {shown} is too old: age_ms {age_ms} > max_age_ms {max_age_ms}",
            (newest,),
            **numbers,
        )
    return _judgement(Verdict.PASS, f"snapshot {shown} recorded", (newest,), **numbers)


def snapshot_at_current_state(
    snapshots: Sequence[SnapshotMetadata],
    current_version: int,
    now_ms: int,
    *,
    since_ms: int,
    since: str,
    who: str = "v5",
) -> Judgement:
    """A snapshot was taken at the current state: the newest snapshot taken at or after
    ``since_ms`` (at least the start of ``who``'s current process, whose projection versions
    start again at 0, daemon facts 0.5) has ``snap-<n>`` metadata and holds ``who``'s current
    projection version. The version rises with every state change (daemon facts 2.4), so an
    equal version means nothing changed since it was taken, however long ago; a version
    behind means the state changed since (FAIL), one ahead is VersionAhead (FAIL). ``since``
    says in words what ``since_ms`` is."""
    after = [s for s in snapshots if s.created_at_ms >= since_ms]
    numbers: dict[str, object] = {
        "snapshots": len(snapshots),
        "since_ms": since_ms,
        "taken_since": len(after),
        "current_version": current_version,
    }
    if not snapshots:
        return _judgement(Verdict.FAIL, "no snapshot is retained", **numbers)
    if not after:
        newest = max(snapshots, key=lambda s: (s.created_at_ms, s.snapshot_id))
        message = (
            f"no snapshot taken since {since} ({_iso(since_ms)}): the newest of "
            f"{len(snapshots)} retained is {_describe_snapshot(newest, now_ms)}, taken "
            f"{_iso(newest.created_at_ms)}, before it"
        )
        return _judgement(Verdict.FAIL, message, (newest,), **numbers)
    newest = max(after, key=lambda s: (s.created_at_ms, s.snapshot_id))
    shown = _describe_snapshot(newest, now_ms)
    behind = current_version - newest.projection_version
    numbers.update(
        snapshot_id=newest.snapshot_id,
        snapshot_version=newest.projection_version,
        versions_behind=behind,
    )
    if not SNAPSHOT_ID.fullmatch(newest.snapshot_id):
        message = f"newest snapshot id {newest.snapshot_id!r} is not snap-<n> metadata"
        return _judgement(Verdict.FAIL, message, (newest,), **numbers)
    if behind < 0:
        message = (
            f"newest snapshot {shown}: VersionAhead {{ snapshot_version: "
            f"{newest.projection_version}, current_version: {current_version} }} on {who}: "
            "it is not a snapshot of the current state"
        )
        return _judgement(Verdict.FAIL, message, (newest,), **numbers)
    if behind > 0:
        message = (
            f"newest snapshot {shown} is {behind} versions behind {who}'s current projection "
            f"version {current_version}: the state changed {behind} times since it was taken"
        )
        return _judgement(Verdict.FAIL, message, (newest,), **numbers)
    message = (
        f"snapshot {shown} holds {who}'s current projection version {current_version} "
        f"(taken since {since})"
    )
    return _judgement(Verdict.PASS, message, (newest,), **numbers)


def periodic_snapshot_fresh(
    snapshots: Sequence[SnapshotMetadata], now_ms: int, interval_ms: int = 300_000
) -> Judgement:
    """The SnapshotManager runs "periodic + shutdown enabled": a Periodic snapshot younger than
    two intervals (else FAIL), and a retained Shutdown snapshot; without one, that shutdown
    snapshots are enabled is not shown (INCONCLUSIVE: it shows only after a shutdown)."""
    periodic = [s for s in snapshots if s.trigger == "Periodic"]
    shutdown = sum(1 for s in snapshots if s.trigger == "Shutdown")
    limit_ms = 2 * interval_ms
    numbers: dict[str, object] = {
        "snapshots": len(snapshots),
        "periodic": len(periodic),
        "shutdown": shutdown,
        "interval_ms": interval_ms,
    }
    if not periodic:
        message = (
            f"no Periodic snapshot among {len(snapshots)} retained: the periodic timer is "
            "not running"
        )
        return _judgement(Verdict.FAIL, message, **numbers)
    newest = max(periodic, key=lambda s: (s.created_at_ms, s.snapshot_id))
    age_ms = _age_ms(newest, now_ms)
    numbers["periodic_age_ms"] = age_ms
    shown = _describe_snapshot(newest, now_ms)
    limit = format_duration(timedelta(milliseconds=limit_ms))
    if age_ms >= limit_ms:
        message = (
            f"newest Periodic snapshot {shown} is older than two intervals ({limit}): "
            "the periodic timer has stopped"
        )
        return _judgement(Verdict.FAIL, message, (newest,), **numbers)
    if not shutdown:
        message = (
            f"newest Periodic snapshot {shown} is within two intervals ({limit}), but no "
            f"Shutdown snapshot among {len(snapshots)} retained: that shutdown snapshots are "
            "enabled is not shown"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, (newest,), **numbers)
    message = (
        f"newest Periodic snapshot {shown} is within two intervals ({limit}); "
        f"{shutdown} Shutdown snapshots retained"
    )
    return _judgement(Verdict.PASS, message, (newest,), **numbers)


CLOCK_SKEW_MS = 60_000
"""How far in the future a snapshot may be stamped before it is not taken at its word."""


def backup_snapshot(
    snapshots: Sequence[SnapshotMetadata],
    now_ms: int,
    live_version: int | None = None,
    *,
    start_ms: int | None = None,
    max_age_ms: int | None = None,
) -> Judgement:
    """A backup was taken before the migration started: a Manual snapshot is retained, taken
    at or before ``start_ms`` (the migration's first alpha run; None: this run starts it) and
    no more than ``max_age_ms`` before it (None: any age). It does not count when it is stamped
    in the future (more than a minute after now: its clock or record is wrong), or when it
    holds projection version 0 (an empty projection) while the live v5 projection
    (``live_version``) is not empty: a backup of nothing backs up nothing."""
    manual = sorted((s for s in snapshots if s.trigger == "Manual"), key=lambda s: s.created_at_ms)
    future = [s for s in manual if s.created_at_ms > now_ms + CLOCK_SKEW_MS]
    empty = [
        s
        for s in manual
        if s not in future and s.projection_version == 0 and (live_version or 0) > 0
    ]
    counted = [s for s in manual if s not in future and s not in empty]
    numbers = {
        "snapshots": len(snapshots),
        "manual": len(manual),
        "counted": len(counted),
        "future": [s.snapshot_id for s in future],
        "empty": [s.snapshot_id for s in empty],
        "live_version": live_version,
    }
    if not manual:
        triggers = ", ".join(sorted({s.trigger for s in snapshots})) or "none"
        message = (
            f"no Manual snapshot (backup) among {len(snapshots)} retained (triggers: {triggers})"
        )
        return _judgement(Verdict.FAIL, message, **numbers)
    if not counted:
        reasons = [
            *(
                f"{s.snapshot_id} is stamped {format_duration(_ms(s.created_at_ms - now_ms))} "
                "in the future"
                for s in future
            ),
            *(
                f"{s.snapshot_id} holds projection version 0 (empty) while the live projection "
                f"is at version {live_version}"
                for s in empty
            ),
        ]
        message = f"none of the {len(manual)} Manual snapshots counts as a backup: " + "; ".join(
            reasons
        )
        return _judgement(Verdict.FAIL, message, (*future, *empty), **numbers)
    start = now_ms if start_ms is None else start_ms
    oldest = start - max_age_ms if max_age_ms is not None else None
    in_time = [
        s
        for s in counted
        if s.created_at_ms <= start + CLOCK_SKEW_MS
        and (oldest is None or s.created_at_ms >= oldest)
    ]
    numbers["migration_start_ms"] = start
    if not in_time:
        when = "this run (the migration's first)" if start_ms is None else _iso(start)
        age = f" and at most {format_duration(_ms(max_age_ms))} before it" if max_age_ms else ""
        newest = counted[-1]
        return _judgement(
            Verdict.FAIL,
            f"no Manual snapshot taken before the migration started at {when}{age}: the newest "
            f"backup is {_describe_snapshot(newest, now_ms)}",
            (newest,),
            **numbers,
        )
    return _judgement(
        Verdict.PASS,
        f"backup taken before the migration started: Manual snapshot "
        f"{_describe_snapshot(in_time[-1], now_ms)}",
        (in_time[-1],),
        **numbers,
    )


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="seconds")


def _ms(ms: int) -> timedelta:
    return timedelta(milliseconds=ms)
