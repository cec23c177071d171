"""The chain of custody one run relies on: the earlier phase's signed bundle, the human
sign-offs, waivers and user reports of the migration (docs/chain-of-custody.md).

Gathered once, on the controller, before any gate runs, and written into the run folder as
``custody.json`` (sealed with the bundle): workers and gates judge from that file, never from
the archive as it may be later.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timezone
from pathlib import Path
from typing import Any

from pytest_canarygate.attestation import Attestation
from pytest_canarygate.attestation import format_time
from pytest_canarygate.attestation import load_attestations
from pytest_canarygate.catalog import Catalog
from pytest_canarygate.chain import DEFAULT_MAX_MONITOR_GAP_H
from pytest_canarygate.chain import Link
from pytest_canarygate.chain import bundle_dirs
from pytest_canarygate.chain import describe_refusal
from pytest_canarygate.chain import examine
from pytest_canarygate.chain import find_link
from pytest_canarygate.chain import find_rehearsal
from pytest_canarygate.chain import latest_rollback
from pytest_canarygate.chain import refusals
from pytest_canarygate.config import CanarygateConfig
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.keys import load_trusted_keys
from pytest_canarygate.verdicts import Inconclusive
from pytest_canarygate.verdicts import Verdict

CUSTODY_FILE = "custody.json"

_PROMOTING = frozenset(v.value for v in Verdict if v.allows_promotion)


def _attestation_json(a: Attestation) -> dict[str, Any]:
    return {
        "file": a.path.name,
        "kind": a.kind,
        "subject": a.subject,
        "by": a.by,
        "signed_at": format_time(a.signed_at),
        "session": a.session,
        "text": a.text,
        "until": format_time(a.until) if a.until else None,
        "phase": a.phase,
        "refers": list(a.refers),
        "keyid": a.keyid,
        "digest": a.digest,
    }


@dataclass
class Custody:
    """What the archive held for this run, as recorded in ``custody.json``."""

    phase: str
    #: the phase whose bundle this one requires (catalog ``[runbook] requires``), if any
    requires: str | None = None
    #: the links relied on: ``chain.Link.as_json()`` each
    relies_on: list[dict[str, Any]] = field(default_factory=list)
    #: why the required bundle was not found (empty when found or not required)
    problems: list[str] = field(default_factory=list)
    #: why a bundle of a phase further back was not found (the final checklist asks for them)
    missing_earlier: list[str] = field(default_factory=list)
    #: the newest rollback bundle, which invalidates every earlier link
    rollback: dict[str, Any] | None = None
    #: sign-offs, waivers, reports and resolutions that count
    attestations: list[dict[str, Any]] = field(default_factory=list)
    #: files that do not count: ``{"file", "kind", "reason", "malformed"}``
    refused: list[dict[str, Any]] = field(default_factory=list)
    #: rollback bundles that do not verify: a rollback cannot be ruled out
    doubtful_rollbacks: list[str] = field(default_factory=list)
    #: the newest signed rollback rehearsal (``--canarygate-stage=rehearsal``) that counts
    rehearsal: dict[str, Any] | None = None
    #: why no rehearsal counts (empty when one does)
    rehearsal_problems: list[str] = field(default_factory=list)
    #: the decision phase's incident timeline: every signed, live run of the migration
    #: (phase, bundle, verdict, started_at, finished_at), oldest first
    timeline: list[dict[str, Any]] = field(default_factory=list)
    #: time in phase from the archive (:func:`soak_record`): ``migration_start``,
    #: ``phase_start``, ``max_gap_h`` and this phase's archived ``runs``
    soak: dict[str, Any] = field(default_factory=dict)

    def write(self, run_dir: Path) -> str:
        """Write ``custody.json``; return its sha256, which the controller checks again when
        it seals the bundle (nothing may change what the gates were given)."""
        data = json.dumps(asdict(self), indent=1, sort_keys=True).encode()
        (run_dir / CUSTODY_FILE).write_bytes(data)
        return hashlib.sha256(data).hexdigest()

    @classmethod
    def load(cls, run_dir: Path) -> Custody:
        path = run_dir / CUSTODY_FILE
        if not path.exists():
            return cls(phase="", problems=[f"{CUSTODY_FILE} was not written in this run"])
        return cls(**json.loads(path.read_text()))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [a for a in self.attestations if a["kind"] == kind]


def gather(
    settings: CanarygateConfig,
    catalog: Catalog,
    phase: str,
    reports_dir: Path,
    endpoints: Mapping[str, str],
    latest_allowed: datetime,
) -> Custody:
    """Read the archive for ``phase``. A key folder that cannot be read, or a malformed or
    unsigned waiver, raises :class:`ConfigError`: the run stops before any gate runs."""
    migration = settings.migration_id
    chain = settings.chain
    keys: dict[str, Any] = {}
    if chain is not None and chain.trusted_keys is not None:
        try:
            keys = dict(load_trusted_keys(chain.trusted_keys))
        except ConfigError as exc:
            raise ConfigError(f"{settings.where}: chain.trusted_keys: {exc}") from None
    custody = Custody(phase=phase, requires=catalog.requires.get(phase))
    # The catalog's decision phase is where rollbacks are run and archived.
    rollback_phase = catalog.decision_phase
    rollback = (
        latest_rollback(reports_dir, migration, keys, phase=rollback_phase)
        if rollback_phase is not None and phase != rollback_phase
        else None
    )
    if rollback is not None:
        custody.rollback = rollback.as_json()
    # A rollback bundle that does not verify (changed, unsigned, another key) may be a rollback
    # someone wants forgotten: it breaks the chain until it is explained and moved out.
    doubtful = (
        unverified_bundles(reports_dir, migration, rollback_phase, keys)
        if keys and rollback_phase is not None and phase != rollback_phase
        else []
    )
    if doubtful:
        names = ", ".join(doubtful[:3]) + (f" and {len(doubtful) - 3} more" if doubtful[3:] else "")
        custody.doubtful_rollbacks = doubtful
        custody.problems.append(
            f"the rollback folder holds bundle(s) that do not verify ({names}): a rollback "
            "cannot be ruled out, so no earlier bundle counts (check them with `canarygate "
            "verify`; move them out of reports/ once explained)"
        )
    # The phase before, then the one before it, ...: the final checklist asks for each.
    earlier: list[str] = []
    while (before := catalog.requires.get(earlier[-1] if earlier else phase)) is not None:
        if before in earlier:
            break
        earlier.append(before)
    for index, before in enumerate(earlier if not custody.doubtful_rollbacks else []):
        found = find_link(
            reports_dir,
            migration,
            before,
            keys,
            endpoints=endpoints,
            not_before=rollback.finished_at if rollback else None,
        )
        if isinstance(found, Link):
            custody.relies_on.append({**found.as_json(), "gates": _gate_verdicts(found, keys)})
            continue
        why = describe_refusal(before, found, keys) or "none found"
        if not keys:
            why = f"{why} (set [chain] trusted_keys in {settings.where})"
        problem = f"no signed {before} bundle to rely on ({phase} requires one): {why}"
        # Only the phase right before decides promotion; it relied on the ones before it.
        (custody.problems if index == 0 else custody.missing_earlier).append(problem)
    rehearsal: Link | tuple[Any, ...] = ()
    if rollback_phase is not None:
        rehearsal = find_rehearsal(
            reports_dir,
            migration,
            keys,
            endpoints=endpoints,
            not_before=rollback.finished_at if rollback else None,
            phase=rollback_phase,
        )
    if isinstance(rehearsal, Link) and not custody.doubtful_rollbacks:
        custody.rehearsal = rehearsal.as_json()
    elif custody.doubtful_rollbacks:
        custody.rehearsal_problems.append(custody.problems[-1])
    else:
        why = describe_refusal("rollback rehearsal", rehearsal, keys) or "none found"
        custody.rehearsal_problems.append(
            f"no signed rollback rehearsal to rely on (run `pytest --phase=rollback "
            f"--canarygate-stage=rehearsal` with a trusted key): {why}"
        )
    custody.soak = soak_record(
        catalog,
        phase,
        reports_dir,
        migration,
        keys,
        endpoints,
        not_before=rollback.finished_at if rollback else None,
        max_gap_h=chain.max_monitor_gap_h if chain is not None else DEFAULT_MAX_MONITOR_GAP_H,
    )
    if phase == catalog.decision_phase:
        custody.timeline = sorted(
            (
                {"phase": ph, **{k: run[k] for k in ("bundle", "started_at", "finished_at")}}
                for ph in catalog.phases
                for run in archived_runs(reports_dir, migration, ph, keys, endpoints, None)
            ),
            key=lambda entry: str(entry["started_at"]),
        )
    found_attestations = load_attestations(
        reports_dir, migration, settings.signers, latest_allowed=latest_allowed
    )
    bad_waivers = found_attestations.malformed("waiver")
    if bad_waivers:
        first = bad_waivers[0]
        reason = first.reason.removesuffix("; it does not count")
        if str(first.path) not in reason:
            reason = f"{first.path}: {reason}"
        raise ConfigError(
            f"waiver {reason}: a malformed or unsigned waiver stops the run before any gate "
            "(remove it, or write it again with `canarygate waive`)"
        )
    custody.refused = [
        {"file": r.path.name, "kind": r.kind, "reason": r.reason, "malformed": r.malformed}
        for r in found_attestations.refused
    ]
    for attestation in found_attestations.valid:
        stale = (
            rollback is not None
            and attestation.kind in ("signoff", "waiver")
            and attestation.signed_at <= _when(rollback.finished_at)
        )
        if stale:
            assert rollback is not None
            custody.refused.append(
                {
                    "file": attestation.path.name,
                    "kind": attestation.kind,
                    "reason": f"signed {format_time(attestation.signed_at)}, before the rollback "
                    f"{rollback.name} finished: a rollback starts the chain again",
                    "malformed": False,
                }
            )
        else:
            custody.attestations.append(_attestation_json(attestation))
    return custody


def _when(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def unverified_bundles(
    reports_dir: Path, migration: str, phase: str, keys: Mapping[str, Any]
) -> list[str]:
    """The bundles of a phase folder that do not verify against ``keys``, newest first."""
    return [
        bundle.name
        for bundle in bundle_dirs(Path(reports_dir) / migration / phase)
        if not examine(bundle, migration, phase, keys).ok
    ]


def _gate_verdicts(link: Link, keys: Mapping[str, Any]) -> dict[str, str]:
    """Each gate's verdict in the linked bundle's statement (gate id -> verdict; a gate with
    several instances by its worst), so that gates can judge what the earlier phase showed."""
    examined = examine(link.bundle, link.bundle.parents[1].name, link.phase, keys)
    gates = (examined.predicate or {}).get("gates")
    verdicts: dict[str, str] = {}
    for entry in gates if isinstance(gates, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("gate"), str):
            verdict = str(entry.get("verdict"))
            if verdicts.get(entry["gate"], Verdict.PASS.value) == Verdict.PASS.value:
                verdicts[entry["gate"]] = verdict
    return verdicts


def archived_runs(
    reports_dir: Path,
    migration: str,
    phase: str,
    keys: Mapping[str, Any],
    endpoints: Mapping[str, str] | None,
    not_before: str | None,
) -> list[dict[str, Any]]:
    """The phase's archived runs that verify against ``keys``, judged the live ``endpoints``
    and finished after ``not_before`` (the last rollback), oldest first: bundle, digest,
    started_at, finished_at and each gate's verdict."""
    runs = []
    for bundle in bundle_dirs(Path(reports_dir) / migration / phase):
        examined = examine(bundle, migration, phase, keys)
        if refusals(examined, endpoints=endpoints, not_before=not_before, promotion=False):
            continue
        predicate = examined.predicate or {}
        gates = predicate.get("gates")
        started, finished = predicate.get("started_at"), predicate.get("finished_at")
        if not (isinstance(gates, list) and isinstance(started, str) and isinstance(finished, str)):
            continue
        runs.append(
            {
                "bundle": bundle.name,
                "digest": examined.digest,
                "started_at": started,
                "finished_at": finished,
                "gates": {
                    str(g.get("gate")): str(g.get("verdict")) for g in gates if isinstance(g, dict)
                },
                "facts": facts if isinstance(facts := predicate.get("facts"), dict) else {},
                "loosened": bool(predicate.get("loosened")),
                "relayed": any(
                    isinstance(peer, dict) and peer.get("relayed")
                    for peer in (predicate.get("peers") or [])
                ),
            }
        )
    return sorted(runs, key=lambda run: str(run["started_at"]))


def soak_record(
    catalog: Catalog,
    phase: str,
    reports_dir: Path,
    migration: str,
    keys: Mapping[str, Any],
    endpoints: Mapping[str, str] | None,
    *,
    not_before: str | None,
    max_gap_h: float,
) -> dict[str, Any]:
    """Where the migration and this phase started, and the phase's archived runs since.

    The migration starts with its first alpha run (the catalog's first phase); a phase with
    its first archived run whose entry gates all PASS or are WAIVED. Without trusted keys
    nothing archived counts, and the phase starts with this run."""
    first_phase = catalog.phases[0] if catalog.phases else phase
    first_runs = archived_runs(reports_dir, migration, first_phase, keys, endpoints, None)
    runs = archived_runs(reports_dir, migration, phase, keys, endpoints, not_before)
    entry = {g.id for g in catalog.gates_for(phase, "entry")}
    # The monitor gates that observe the daemons: those judged from the archive itself
    # (``archive = true``: time in phase, the canary's expansion) would only repeat what the
    # archive was short of at the time.
    monitor = {g.id for g in catalog.gates_for(phase, "monitor") if not g.archive}
    phase_start = None
    for run in runs:
        judged = {g: v for g, v in run["gates"].items() if g in entry}
        if judged and set(judged) == entry and all(v in _PROMOTING for v in judged.values()):
            phase_start = run["started_at"]
            break
    since = [r for r in runs if phase_start is not None and r["started_at"] >= phase_start]
    unverified = [
        name
        for name in (unverified_bundles(reports_dir, migration, phase, keys) if keys else [])
        if phase_start is None or (stamp := _stamp_of(name)) is None or stamp >= _when(phase_start)
    ]
    return {
        "migration_start": first_runs[0]["started_at"] if first_runs else None,
        "phase_start": phase_start,
        "max_gap_h": max_gap_h,
        "monitor_gates": sorted(monitor),
        "runs": [
            {
                "bundle": r["bundle"],
                "digest": r["digest"],
                "started_at": r["started_at"],
                "finished_at": r["finished_at"],
                "monitor": {g: v for g, v in r["gates"].items() if g in monitor},
                "facts": r["facts"],
                # a monitor run only if it judged every monitor gate, at the runbook's numbers,
                # through no relay: a partial or loosened run fills no gap
                "counts": monitor <= set(r["gates"]) and not r["loosened"] and not r["relayed"],
            }
            for r in since
        ],
        "unverified": unverified,
    }


def _stamp_of(bundle_name: str) -> datetime | None:
    """The time a bundle folder's name starts with (``20261204T203906.161Z-...``)."""
    try:
        moment = datetime.strptime(bundle_name.split("Z", 1)[0], "%Y%m%dT%H%M%S.%f")
    except ValueError:
        return None
    return moment.replace(tzinfo=timezone.utc)


def waiver_for(
    custody: Custody,
    gate_id: str,
    verdict: Verdict,
    now: datetime,
    waivable_failures: tuple[str, ...],
) -> dict[str, Any] | None:
    """The waiver that turns ``verdict`` of ``gate_id`` into WAIVED, if one applies: valid,
    unexpired at ``now``, scoped to this phase or to any; a FAIL only where the config's
    ``[chain] waivable_failures`` lists the gate."""
    if verdict is Verdict.PASS:
        return None
    if verdict is Verdict.FAIL and gate_id not in waivable_failures:
        return None
    stamp = format_time(now)
    for waiver in custody.of_kind("waiver"):
        if waiver["subject"] != gate_id or waiver["phase"] not in (None, custody.phase):
            continue
        if waiver["until"] is not None and waiver["until"] > stamp:
            return waiver
    return None


def waiver_misses(
    custody: Custody,
    gate_id: str,
    verdict: Verdict,
    now: datetime,
    waivable_failures: tuple[str, ...],
) -> list[str]:
    """Why the waivers of ``gate_id`` in the archive did not apply (empty when there are
    none, or one applies): said beside the gate's verdict, so a waiver never fails silently."""
    if verdict is Verdict.PASS or waiver_for(custody, gate_id, verdict, now, waivable_failures):
        return []
    stamp = format_time(now)
    misses = []
    for waiver in custody.of_kind("waiver"):
        if waiver["subject"] != gate_id:
            continue
        if waiver["phase"] not in (None, custody.phase):
            misses.append(f"{waiver['file']} is for phase {waiver['phase']}")
        elif waiver["until"] is not None and waiver["until"] <= stamp:
            misses.append(f"{waiver['file']} expired at {waiver['until']}")
        elif verdict is Verdict.FAIL:
            misses.append(
                f"{waiver['file']}: a FAIL is waivable only where [chain] waivable_failures "
                "lists the gate"
            )
    misses += [
        f"{r['file']}: {r['reason']}"
        for r in custody.refused
        if r["kind"] == "waiver" and f"-{gate_id}-" in r["file"]
    ]
    return misses


class CustodyView:
    """The custody record as a gate reads it; each lookup raises a gate outcome when the
    evidence is not there."""

    def __init__(self, custody: Custody, now: datetime) -> None:
        self.custody = custody
        self.now = now

    def link(self, phase: str) -> dict[str, Any]:
        """The ``phase`` bundle this run relies on; INCONCLUSIVE naming why there is none."""
        for link in self.custody.relies_on:
            if link["phase"] == phase:
                return link
        if self.custody.doubtful_rollbacks:
            raise Inconclusive(next(p for p in self.custody.problems if "rollback folder" in p))
        why = "; ".join(
            p for p in (*self.custody.problems, *self.custody.missing_earlier) if f" {phase} " in p
        ) or (f"this run does not rely on any {phase} bundle (catalog [runbook] requires)")
        raise Inconclusive(why)

    def rehearsal(self) -> dict[str, Any]:
        """The signed rollback rehearsal this run relies on; INCONCLUSIVE naming why none."""
        if self.custody.rehearsal is None:
            raise Inconclusive(
                "; ".join(self.custody.rehearsal_problems) or "no rollback rehearsal was looked for"
            )
        return self.custody.rehearsal

    def signoffs(self, item: str, session: str | None = None) -> list[dict[str, Any]]:
        """Valid sign-offs of ``item`` (of ``session`` when given), oldest first."""
        return [
            a
            for a in self.custody.of_kind("signoff")
            if a["subject"] == item and (session is None or a["session"] == session)
        ]

    def refused_for(self, subject: str) -> list[str]:
        """Why files that may have meant ``subject`` did not count (named in messages)."""
        return [f"{r['file']}: {r['reason']}" for r in self.custody.refused if subject in r["file"]]

    def open_reports(self, session: str | None = None) -> list[dict[str, Any]]:
        """User reports not resolved by a valid resolution from someone other than the
        reporter (nobody closes their own report)."""
        resolutions = self.custody.of_kind("resolution")
        return [
            a
            for a in self.custody.of_kind("report")
            if not any(
                a["digest"] in (r["subject"], *r["refers"]) and r["by"] != a["by"]
                for r in resolutions
            )
            and (session is None or a["session"] == session)
        ]

    def require_signoff(self, item: str, session: str | None = None) -> dict[str, Any]:
        """The newest valid sign-off of ``item``; INCONCLUSIVE naming what is missing and the
        files that were refused."""
        found = self.signoffs(item, session)
        if found:
            return found[-1]
        whose = f" for session {session}" if session else ""
        refused = self.refused_for(item)
        extra = f"; refused: {'; '.join(refused)}" if refused else ""
        raise Inconclusive(
            f"no valid signed sign-off of {item}{whose} (write one with `canarygate signoff "
            f"--item {item}{' --session ' + session if session else ''} --by NAME --key KEY`; "
            f"the signer must be allowed {item} in [[signers]]){extra}"
        )


__all__ = [
    "CUSTODY_FILE",
    "Custody",
    "CustodyView",
    "gather",
    "waiver_for",
    "waiver_misses",
]
