"""The chain of custody between phase bundles: which signed bundle a phase relies on.

A phase that has a predecessor relies on the newest predecessor bundle that counts as a *link*
(docs/chain-of-custody.md): it verifies against a trusted key (signed, every file intact, not
moved), is of the same migration and the predecessor phase, was judged against the same daemon
endpoints, is live, complete and promotable (every gate PASS or WAIVED), and finished after the
newest rollback of the migration. Phases and their predecessors are parameters: the engine knows
no migration of its own.

The archive is ``<reports>/<migration>/<phase>/<UTC stamp>-<verdict>/``. Before a folder is
listed it is trust-checked (:func:`pytest_canarygate.trust.check_file_trust`: every folder from
``/`` down owned by us or root and writable by nobody else), and so is each bundle's envelope,
which is read within :data:`MAX_ENVELOPE_BYTES` to take its digest; the rest of a bundle is
checked by :func:`pytest_canarygate.verify.verify_bundle`. Nothing in a bundle is executed.

``canarygate status MIGRATION`` prints the chain so far, one line per phase; ``canarygate verify
--chain MIGRATION`` (in :mod:`pytest_canarygate.verify`) checks every recorded link with
:func:`check_links`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import textwrap
import unicodedata
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from pytest_canarygate import cli
from pytest_canarygate import clock
from pytest_canarygate._requires import require
from pytest_canarygate.errors import CanarygateError
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.errors import EndpointError
from pytest_canarygate.errors import EvidenceMissing
from pytest_canarygate.errors import StrictJSONError
from pytest_canarygate.signing import ENVELOPE_NAME
from pytest_canarygate.signing import file_sha256
from pytest_canarygate.strictjson import loads
from pytest_canarygate.trust import check_file_trust
from pytest_canarygate.trust import open_trusted
from pytest_canarygate.verdicts import Verdict
from pytest_canarygate.verify import verify_bundle

require("securesystemslib")

if TYPE_CHECKING:
    from securesystemslib.signer import Key

__all__ = [
    "CUSTODY_NAME",
    "DEFAULT_MAX_MONITOR_GAP_H",
    "MAX_CUSTODY_BYTES",
    "MAX_ENVELOPE_BYTES",
    "NON_PHASE_FOLDERS",
    "PHASE_ORDER",
    "REHEARSAL_STAGE",
    "ROLLBACK_PHASE",
    "Candidate",
    "ChainError",
    "ChainSettings",
    "Link",
    "LinkCheck",
    "PhaseStatus",
    "add_subcommand",
    "chain_status",
    "check_links",
    "describe_refusal",
    "find_link",
    "find_rehearsal",
    "format_link_checks",
    "format_status",
    "latest_rollback",
    "list_phases",
    "parse_chain_table",
    "parse_phases",
    "parse_requires",
]

#: Default and bound of ``[chain] max_monitor_gap_h``.
DEFAULT_MAX_MONITOR_GAP_H = 6.0
MAX_MONITOR_GAP_H = 720.0
#: The largest envelope read (it lists one digest per bundle file).
MAX_ENVELOPE_BYTES = 16 * 1024 * 1024
#: Seconds allowed to read one envelope.
ENVELOPE_READ_SECONDS = 30.0
#: The phase whose bundles invalidate every earlier link.
ROLLBACK_PHASE = "rollback"
#: The stage of a rollback rehearsal (``--phase=rollback --canarygate-stage=rehearsal``): a
#: dry-run of the rollback procedure that changes nothing, so never a rollback itself.
REHEARSAL_STAGE = "rehearsal"
#: The usual phase order, used to sort the phase folders found when none are given.
PHASE_ORDER = ("alpha", "canary", "gradual", "cutover", ROLLBACK_PHASE)
#: Folders of a migration that hold no bundles.
NON_PHASE_FOLDERS = frozenset({"signoffs", "waivers", "user-reports"})
RUNNING_SUFFIX = "-running"
REFUSED = "REFUSED"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_PROMOTING = frozenset(v.value for v in Verdict if v.allows_promotion)
_TRUST_ENDPOINT = "archive"
_WIDTH = 100


class ChainError(CanarygateError):
    """The archive cannot be read: a reports folder owned by someone else or writable by group
    or others, or one that cannot be inspected. The message names the folder and the fix."""


# --- [chain] settings ---------------------------------------------------------------------


@dataclass(frozen=True)
class ChainSettings:
    """The config's ``[chain]`` table."""

    trusted_keys: Path | None
    max_monitor_gap_h: float = DEFAULT_MAX_MONITOR_GAP_H
    waivable_failures: tuple[str, ...] = ()


def parse_chain_table(table: object, base_dir: Path, source: str) -> ChainSettings:
    """Read the ``[chain]`` table (``None`` when absent); ``trusted_keys`` is relative to
    ``base_dir``. Unknown keys and wrong types raise :class:`ConfigError` naming
    ``<source>: chain.<key>``."""
    from pytest_canarygate.config import TableReader  # config may come to import this module

    if table is None:
        table = {}
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source}: chain = {table!r}: expected a table")
    reader = TableReader(source, table, "chain")
    reader.reject_unknown(("trusted_keys", "max_monitor_gap_h", "waivable_failures"))
    trusted_keys = None
    if "trusted_keys" in table:
        raw = reader.string("trusted_keys")
        if "\x00" in raw:
            raise reader.error("trusted_keys", raw, "a path without NUL bytes")
        trusted_keys = Path(base_dir) / raw
    gap = table.get("max_monitor_gap_h", DEFAULT_MAX_MONITOR_GAP_H)
    if (
        isinstance(gap, bool)
        or not isinstance(gap, int | float)
        or not 0 < gap <= MAX_MONITOR_GAP_H
    ):
        raise reader.error(
            "max_monitor_gap_h", gap, f"a number of hours, > 0 and <= {MAX_MONITOR_GAP_H:g}"
        )
    waivable = reader.strings("waivable_failures", (), star=None) or ()
    return ChainSettings(
        trusted_keys=trusted_keys, max_monitor_gap_h=float(gap), waivable_failures=waivable
    )


# --- links and candidates -----------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """A bundle that counts as a link of the chain."""

    phase: str
    bundle: Path
    name: str
    #: sha256 (hex) of the bundle's ``statement.dsse.json``.
    digest: str
    verdict: str
    finished_at: str
    signer_keyid: str

    def as_json(self) -> dict[str, str]:
        """The entry a statement's ``relies_on`` lists (plus signer and finish time)."""
        return {
            "phase": self.phase,
            "bundle": self.name,
            "digest": self.digest,
            "signer_keyid": self.signer_keyid,
            "finished_at": self.finished_at,
        }


@dataclass(frozen=True)
class Candidate:
    """A bundle examined that does not count as a link, and why."""

    bundle: Path
    reasons: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"bundle": self.bundle.name, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class _Examined:
    """One bundle read and verified; ``predicate`` is evidence only when ``status`` is VALID."""

    bundle: Path
    status: str
    problems: tuple[str, ...]
    predicate: Mapping[str, Any] | None
    signer_keyid: str | None
    digest: str | None
    #: the statement's subjects (file name -> sha256) when ``status`` is VALID
    subjects: Mapping[str, str] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "VALID"


def _check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise ConfigError(
            f"{what} {value!r}: expected a plain name (letters, digits, '.', '_', '-')"
        )
    return value


def _trusted_folder(folder: Path) -> bool:
    """Check ``folder`` and every folder above it; False when it does not exist."""
    try:
        check_file_trust(folder, endpoint=_TRUST_ENDPOINT, directory=True, expected="a folder")
    except EvidenceMissing:
        return False
    except EndpointError as exc:
        raise ChainError(f"reports folder {folder}: {exc.reason}") from None
    return True


def _bundle_dirs(phase_dir: Path) -> list[Path]:
    """The bundle folders of a phase folder, newest first (names start with a UTC stamp)."""
    if not _trusted_folder(phase_dir):
        return []
    found = []
    try:
        with os.scandir(phase_dir) as entries:
            for entry in entries:
                name = entry.name
                if (
                    name.startswith(".")
                    or name.endswith((".pub.json", RUNNING_SUFFIX))
                    or not entry.is_dir(follow_symlinks=False)
                ):
                    continue
                found.append(Path(entry.path))
    except OSError as exc:
        raise ChainError(f"reports folder {phase_dir}: cannot be listed: {exc.strerror}") from None
    return sorted(found, key=lambda path: path.name, reverse=True)


def _examine(
    bundle: Path, migration: str, phase: str, trusted_keys: Mapping[str, Key]
) -> _Examined:
    """Read the envelope (trust-checked, bounded) for its digest, then verify the bundle."""
    envelope = bundle / ENVELOPE_NAME
    digest = None
    try:
        with open_trusted(
            envelope,
            endpoint=_TRUST_ENDPOINT,
            max_bytes=MAX_ENVELOPE_BYTES,
            seconds=ENVELOPE_READ_SECONDS,
            expected="a DSSE envelope",
        ) as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
    except EvidenceMissing:
        pass  # verify_bundle names what is missing
    except EndpointError as exc:
        return _Examined(bundle, REFUSED, (f"{ENVELOPE_NAME}: {exc.reason}",), None, None, None)
    result = verify_bundle(bundle, trusted_keys, expected_phase=phase, expected_migration=migration)
    problems = list(result.problems)
    status = result.status.value
    if result.ok and digest is not None:
        try:
            again = file_sha256(envelope)
        except OSError as exc:
            again = f"unreadable ({exc.strerror})"
        if again != digest:
            status = "INVALID"
            problems.append(f"{ENVELOPE_NAME}: changed while it was being verified")
    return _Examined(
        bundle=bundle,
        status=status,
        problems=tuple(problems),
        predicate=result.predicate,
        signer_keyid=result.signer_keyid,
        digest=digest,
        subjects=_subject_digests(result.statement) if status == "VALID" else None,
    )


def _subject_digests(statement: Mapping[str, Any] | None) -> dict[str, str]:
    """The signed subjects of a verified statement: file name -> sha256."""
    subjects = statement.get("subject") if statement else None
    found: dict[str, str] = {}
    for subject in subjects if isinstance(subjects, list) else []:
        name = subject.get("name") if isinstance(subject, dict) else None
        digests = subject.get("digest") if isinstance(subject, dict) else None
        sha256 = digests.get("sha256") if isinstance(digests, dict) else None
        if isinstance(name, str) and isinstance(sha256, str):
            found[name] = sha256
    return found


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _peer_endpoints(predicate: Mapping[str, Any]) -> dict[str, str] | None:
    peers = predicate.get("peers")
    if not isinstance(peers, list):
        return None
    found: dict[str, str] = {}
    for peer in peers:
        if not (
            isinstance(peer, dict)
            and isinstance(peer.get("daemon"), str)
            and isinstance(peer.get("endpoint"), str)
        ):
            return None
        found[peer["daemon"]] = peer["endpoint"]
    return found


def _refusals(
    examined: _Examined,
    *,
    endpoints: Mapping[str, str] | None,
    not_before: str | None,
    promotion: bool = True,
) -> list[str]:
    """Why ``examined`` is not a link (empty when it is one). ``promotion`` False: only
    verification and a live target count (a rollback)."""
    if not examined.ok or examined.predicate is None:
        return [f"{examined.status}: {problem}" for problem in examined.problems] or [
            f"{examined.status}: does not verify"
        ]
    predicate = examined.predicate
    reasons = []
    target = predicate.get("target")
    kind = target.get("kind") if isinstance(target, Mapping) else None
    if kind != "live":
        reasons.append(f"not live: target is {kind!r} (a simulated run is never a sign-off)")
    signer = predicate.get("signer")
    if isinstance(signer, Mapping) and signer.get("ephemeral"):
        reasons.append("ephemeral key: signed with a throwaway key (never a sign-off)")
    if promotion:
        scope = predicate.get("scope")
        if scope != "complete":
            reasons.append(f"partial: scope is {scope!r}, not complete")
        if predicate.get("incomplete"):
            reasons.append("incomplete: not every gate that should have run has a result")
        if predicate.get("promotable") is not True:
            because = predicate.get("not_promotable_because")
            texts = [str(r) for r in because] if isinstance(because, list) else []
            why = "; ".join(texts) or "the statement does not say it is"
            reasons.append(f"not promotable: {why}")
        gates = predicate.get("gates")
        if not isinstance(gates, list):
            reasons.append("no gates: the statement lists none")
        else:
            for gate in gates:
                verdict = gate.get("verdict") if isinstance(gate, dict) else None
                if verdict not in _PROMOTING:
                    name = gate.get("gate") if isinstance(gate, dict) else None
                    item = gate.get("item") if isinstance(gate, dict) else None
                    reasons.append(
                        f"{verdict} gate: {item} ({name}) is {verdict}, not PASS or WAIVED"
                    )
    if endpoints is not None:
        judged = _peer_endpoints(predicate)
        if judged != dict(endpoints):
            reasons.append(
                f"other endpoints: judged against {_endpoint_text(judged)}, "
                f"expected {_endpoint_text(endpoints)}"
            )
    if not_before is not None:
        finished = _parse_time(predicate.get("finished_at"))
        limit = _parse_time(not_before)
        if finished is None:
            reasons.append(
                f"bad finished_at: {predicate.get('finished_at')!r} is not an ISO UTC time"
            )
        elif limit is None or finished <= limit:
            reasons.append(
                f"rolled back: finished {predicate.get('finished_at')}, not after {not_before} "
                "(the newest rollback: the chain restarts after it)"
            )
    return reasons


def _endpoint_text(endpoints: Mapping[str, str] | None) -> str:
    if endpoints is None:
        return "none recorded"
    return ", ".join(f"{daemon}={uri}" for daemon, uri in sorted(endpoints.items())) or "none"


def _as_link(examined: _Examined, phase: str) -> Link:
    predicate = examined.predicate or {}
    return Link(
        phase=phase,
        bundle=examined.bundle,
        name=examined.bundle.name,
        digest=examined.digest or "",
        verdict=str(predicate.get("verdict")),
        finished_at=str(predicate.get("finished_at")),
        signer_keyid=examined.signer_keyid or "",
    )


def find_link(
    reports_dir: Path,
    migration: str,
    phase: str,
    trusted_keys: Mapping[str, Key],
    *,
    endpoints: Mapping[str, str] | None,
    not_before: str | None = None,
) -> Link | tuple[Candidate, ...]:
    """The newest bundle of ``reports_dir/<migration>/<phase>/`` that counts as a link.

    A bundle counts when it verifies against ``trusted_keys`` for this phase and migration, its
    target is live, its scope complete and not incomplete, it is promotable with every gate PASS
    or WAIVED, its peers' endpoints equal ``endpoints`` (when given) and it finished after
    ``not_before`` (when given: the ``finished_at`` of :func:`latest_rollback`).

    Otherwise returns every bundle examined, newest first, with why it does not count. The tuple
    is empty when there is no bundle at all (or no phase folder), and also when
    ``trusted_keys`` is empty (then nothing is examined): callers tell the two apart and say
    "no trusted keys" (:func:`describe_refusal` does). Folders ending ``-running``, hidden
    entries, ``*.pub.json`` and anything that is not a directory (a symbolic link included) are
    not bundles. Raises :class:`ChainError` when a reports folder is not trusted.
    """
    found = _find(
        reports_dir, migration, phase, trusted_keys, endpoints=endpoints, not_before=not_before
    )
    return _as_link(found, phase) if isinstance(found, _Examined) else found


def _find(
    reports_dir: Path,
    migration: str,
    phase: str,
    trusted_keys: Mapping[str, Key],
    *,
    endpoints: Mapping[str, str] | None,
    not_before: str | None,
) -> _Examined | tuple[Candidate, ...]:
    """:func:`find_link`, returning the examined bundle (with its predicate) of a link."""
    _check_name(migration, "migration")
    _check_name(phase, "phase")
    if not trusted_keys:
        return ()
    candidates = []
    for bundle in _bundle_dirs(Path(reports_dir) / migration / phase):
        examined = _examine(bundle, migration, phase, trusted_keys)
        reasons = _refusals(examined, endpoints=endpoints, not_before=not_before)
        if not reasons:
            return examined
        candidates.append(Candidate(bundle=bundle, reasons=tuple(reasons)))
    return tuple(candidates)


def _rollbacks(
    reports_dir: Path, migration: str, trusted_keys: Mapping[str, Key], phase: str
) -> list[Link]:
    """Every rollback bundle that verifies and was live, newest first."""
    if not trusted_keys:
        return []
    found = []
    for bundle in _bundle_dirs(Path(reports_dir) / migration / phase):
        examined = _examine(bundle, migration, phase, trusted_keys)
        if _is_rehearsal(examined):
            continue  # a dry-run of the procedure: nothing was rolled back
        if not _refusals(examined, endpoints=None, not_before=None, promotion=False):
            if _parse_time((examined.predicate or {}).get("finished_at")) is not None:
                found.append(_as_link(examined, phase))
    return found


def _is_rehearsal(examined: _Examined) -> bool:
    """True for a verified bundle whose signed predicate records the rehearsal stage."""
    predicate = examined.predicate if examined.ok else None
    return predicate is not None and predicate.get("stage") == REHEARSAL_STAGE


def latest_rollback(
    reports_dir: Path,
    migration: str,
    trusted_keys: Mapping[str, Key],
    *,
    phase: str = ROLLBACK_PHASE,
) -> Link | None:
    """The newest rollback bundle that verifies (any verdict, live target, a readable
    ``finished_at``). A rollback invalidates every earlier link: pass its ``finished_at`` to
    :func:`find_link` as ``not_before``. A rehearsal (stage "rehearsal", :func:`find_rehearsal`)
    rolled nothing back and is never one."""
    _check_name(migration, "migration")
    rollbacks = _rollbacks(reports_dir, migration, trusted_keys, phase)
    return rollbacks[0] if rollbacks else None


def find_rehearsal(
    reports_dir: Path,
    migration: str,
    trusted_keys: Mapping[str, Key],
    *,
    endpoints: Mapping[str, str] | None,
    not_before: str | None = None,
    phase: str = ROLLBACK_PHASE,
) -> Link | tuple[Candidate, ...]:
    """The newest rollback rehearsal that counts: "Rollback procedure tested (dry-run)".

    A bundle of ``reports_dir/<migration>/rollback/`` counts when it verifies against
    ``trusted_keys`` for this migration and the rollback phase, its target is live and its key
    not ephemeral, its statement records stage "rehearsal" and the stage is its only narrowing
    (``partial_reasons`` exactly ``["--canarygate-stage=rehearsal"]``, no missing gate of the
    stage), it is not incomplete, it judged at least one gate and every gate is PASS or WAIVED,
    its peers' endpoints equal ``endpoints`` (when given) and it finished after ``not_before``
    (when given). Its verdict is PARTIAL and it is never promotable: a stage run never is.

    Otherwise returns every rollback bundle examined, newest first, with why it does not count
    (empty as for :func:`find_link`: no bundle, or no trusted keys). Raises :class:`ChainError`
    when a reports folder is not trusted.
    """
    _check_name(migration, "migration")
    if not trusted_keys:
        return ()
    candidates = []
    for bundle in _bundle_dirs(Path(reports_dir) / migration / phase):
        examined = _examine(bundle, migration, phase, trusted_keys)
        reasons = _refusals(examined, endpoints=endpoints, not_before=not_before, promotion=False)
        if examined.ok and examined.predicate is not None:
            reasons += _rehearsal_refusals(examined.predicate)
        if not reasons:
            return _as_link(examined, phase)
        candidates.append(Candidate(bundle=bundle, reasons=tuple(reasons)))
    return tuple(candidates)


def _rehearsal_refusals(predicate: Mapping[str, Any]) -> list[str]:
    """Why a verified rollback bundle is not a complete, passing rehearsal (empty: it is)."""
    stage = predicate.get("stage")
    if stage != REHEARSAL_STAGE:
        return [
            f"not a rehearsal: stage is {stage!r}, not {REHEARSAL_STAGE!r} "
            f"(run --phase={ROLLBACK_PHASE} --canarygate-stage={REHEARSAL_STAGE})"
        ]
    reasons = []
    narrowing = predicate.get("partial_reasons")
    expected = [f"--canarygate-stage={REHEARSAL_STAGE}"]
    if narrowing != expected:
        reasons.append(
            f"narrowed: partial_reasons {narrowing!r}; a rehearsal is narrowed by "
            f"{expected[0]} only"
        )
    missing = predicate.get("missing_gates")
    if not isinstance(missing, list):
        reasons.append("missing gates: the statement does not list them")
    elif missing:
        names = ", ".join(str(m) for m in missing)
        reasons.append(f"missing gates: {names} of the rehearsal did not run")
    if predicate.get("incomplete"):
        reasons.append("incomplete: not every gate that should have run has a result")
    gates = predicate.get("gates")
    if not isinstance(gates, list) or not gates:
        reasons.append("no gates: the statement lists none")
        return reasons
    for gate in gates:
        verdict = gate.get("verdict") if isinstance(gate, dict) else None
        if verdict not in _PROMOTING:
            name = gate.get("gate") if isinstance(gate, dict) else None
            item = gate.get("item") if isinstance(gate, dict) else None
            reasons.append(f"{verdict} gate: {item} ({name}) is {verdict}, not PASS or WAIVED")
    return reasons


def describe_refusal(
    phase: str, found: Link | tuple[Candidate, ...], trusted_keys: Mapping[str, Key]
) -> str | None:
    """One line saying why no ``phase`` bundle is a link (None when ``found`` is a link)."""
    if isinstance(found, Link):
        return None
    if not trusted_keys:
        return f"no {phase} link: no trusted keys, so no bundle can count"
    if not found:
        return f"no {phase} link: no {phase} bundle"
    each = "; ".join(f"{c.bundle.name}: {', '.join(c.reasons)}" for c in found)
    return f"no valid {phase} link: {each}"


# --- phases -------------------------------------------------------------------------------


def list_phases(reports_dir: Path, migration: str) -> list[str]:
    """The phase folders of a migration (not signoffs, waivers, user-reports): those of
    :data:`PHASE_ORDER` in that order, then the others sorted."""
    _check_name(migration, "migration")
    folder = Path(reports_dir) / migration
    if not _trusted_folder(folder):
        return []
    try:
        with os.scandir(folder) as entries:
            names = [
                e.name
                for e in entries
                if e.is_dir(follow_symlinks=False)
                and e.name not in NON_PHASE_FOLDERS
                and _NAME_RE.match(e.name)
            ]
    except OSError as exc:
        raise ChainError(f"reports folder {folder}: cannot be listed: {exc.strerror}") from None
    known = [p for p in PHASE_ORDER if p in names]
    return known + sorted(n for n in names if n not in PHASE_ORDER)


def parse_phases(text: str) -> list[str]:
    """``alpha,canary,...`` as a list of phase names (:class:`ConfigError` when bad)."""
    phases = [p.strip() for p in text.split(",") if p.strip()]
    if not phases:
        raise ConfigError(f"phases {text!r}: expected phase names separated by commas")
    for phase in phases:
        _check_name(phase, "phase")
    if len(set(phases)) != len(phases):
        raise ConfigError(f"phases {text!r}: a phase is named twice")
    return phases


def catalog_requires(start: Path) -> str:
    """``[runbook] requires`` of the ``gates/catalog.toml`` in ``start`` or above, written as
    ``--requires`` takes it (``canary=alpha,...``); "" when there is no such catalog."""
    from pytest_canarygate.catalog import find_catalog
    from pytest_canarygate.catalog import load_catalog

    try:
        requires = load_catalog(find_catalog(start)).requires
    except ConfigError:
        return ""
    return ",".join(f"{phase}={before}" for phase, before in requires.items())


def parse_requires(text: str) -> dict[str, str]:
    """``canary=alpha,gradual=canary`` as ``{phase: predecessor}`` (:class:`ConfigError`)."""
    requires: dict[str, str] = {}
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        phase, sep, predecessor = (part.strip() for part in item.partition("="))
        if not sep:
            raise ConfigError(f"requires {item!r}: expected PHASE=PREDECESSOR")
        _check_name(phase, "phase")
        _check_name(predecessor, "phase")
        if phase == predecessor:
            raise ConfigError(f"requires {item!r}: a phase cannot require itself")
        if phase in requires:
            raise ConfigError(f"requires: phase {phase!r} is given twice")
        requires[phase] = predecessor
    if not requires:
        raise ConfigError(f"requires {text!r}: expected PHASE=PREDECESSOR,...")
    return requires


# --- status -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseStatus:
    """Where one phase stands: its newest bundle (any verdict), the link the next run of the
    phase would rely on, and what blocks the next promotion."""

    phase: str
    latest: str | None
    status: str | None
    verdict: str | None
    signer_keyid: str | None
    requires: str | None
    relies_on: Link | None
    blocks: tuple[str, ...]
    #: the newest bundle of the phase that verified, whose ``custody.json`` is read
    custody_from: str | None = None
    #: ``custody.json`` of that bundle: "read", "absent" (an older bundle), "unreadable"; None
    #: without a verified bundle
    custody: str | None = None
    #: ``soak.phase_start`` of that custody record (None: the phase had not started)
    phase_start: str | None = None
    #: seconds from ``phase_start`` to that bundle's ``finished_at``
    in_phase_s: float | None = None
    #: valid sign-offs by item: ``{"item", "count", "by", "sessions"}`` (None: not read)
    signoffs: tuple[Mapping[str, Any], ...] | None = None
    #: valid waivers of this phase (or of any): ``{"gate", "until", "by", "phase", "expired"}``
    waivers: tuple[Mapping[str, Any], ...] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "latest": self.latest,
            "status": self.status,
            "verdict": self.verdict,
            "signer_keyid": self.signer_keyid,
            "requires": self.requires,
            "relies_on": self.relies_on.as_json() if self.relies_on else None,
            "blocks": list(self.blocks),
            "custody_from": self.custody_from,
            "custody": self.custody,
            "phase_start": self.phase_start,
            "in_phase_s": self.in_phase_s,
            "signoffs": None if self.signoffs is None else [dict(s) for s in self.signoffs],
            "waivers": None if self.waivers is None else [dict(w) for w in self.waivers],
        }


#: The custody record a run writes into its folder, sealed with the bundle
#: (:data:`pytest_canarygate.custody.CUSTODY_FILE`).
CUSTODY_NAME = "custody.json"
#: The largest ``custody.json`` read, and the seconds allowed to read it.
MAX_CUSTODY_BYTES = 4 * 1024 * 1024
CUSTODY_READ_SECONDS = 30.0
#: How a waiver given as a date (``--until 2026-12-10``) is written: the end of that day.
_END_OF_DAY = "T23:59:59.999Z"


@dataclass(frozen=True)
class _CustodySummary:
    """What ``canarygate status`` shows of one verified bundle's ``custody.json``."""

    bundle: str | None = None
    state: str | None = None
    problem: str | None = None
    phase_start: str | None = None
    in_phase_s: float | None = None
    signoffs: tuple[Mapping[str, Any], ...] | None = None
    waivers: tuple[Mapping[str, Any], ...] | None = None


def _read_custody(examined: _Examined) -> tuple[Mapping[str, Any] | None, str | None]:
    """``custody.json`` of a VALID bundle, read only when the statement signs it and its bytes
    still have the signed sha256 (trust-checked, bounded, strict JSON): ``(record, None)``;
    ``(None, None)`` when the bundle has none (an older bundle); ``(None, why)`` otherwise."""
    signed = (examined.subjects or {}).get(CUSTODY_NAME) if examined.ok else None
    if signed is None:
        return None, None
    try:
        with open_trusted(
            examined.bundle / CUSTODY_NAME,
            endpoint=_TRUST_ENDPOINT,
            max_bytes=MAX_CUSTODY_BYTES,
            seconds=CUSTODY_READ_SECONDS,
            expected="a custody record",
        ) as handle:
            data = handle.read()
    except EndpointError as exc:
        return None, exc.reason
    if hashlib.sha256(data).hexdigest() != signed:
        return None, "its sha256 is not the one the statement signs (changed since it verified)"
    try:
        record = loads(data)
    except StrictJSONError as exc:
        return None, f"not strict JSON: {exc}"
    if not isinstance(record, dict):
        return None, f"not a JSON object but {type(record).__name__}"
    return record, None


def _optional_text(value: object) -> str | None:
    return None if value is None else str(value)


def _summarize_custody(examined: _Examined | None, phase: str, now: datetime) -> _CustodySummary:
    """Time in phase, sign-offs and waivers from ``examined``'s ``custody.json`` (a verified
    bundle, or None)."""
    if examined is None or not examined.ok:
        return _CustodySummary()
    name = examined.bundle.name
    record, problem = _read_custody(examined)
    if problem is not None:
        return _CustodySummary(bundle=name, state="unreadable", problem=problem)
    if record is None:
        return _CustodySummary(bundle=name, state="absent")
    soak = record.get("soak", {})
    attestations = record.get("attestations", [])
    if not isinstance(soak, dict):
        problem = "soak is not an object"
    elif not isinstance(attestations, list) or not all(isinstance(a, dict) for a in attestations):
        problem = "attestations is not a list of objects"
    start_text = soak.get("phase_start") if isinstance(soak, dict) else None
    start = _parse_time(start_text)
    if problem is None and start_text is not None and start is None:
        problem = f"soak.phase_start {start_text!r} is not an ISO UTC time"
    if problem is not None:
        return _CustodySummary(bundle=name, state="unreadable", problem=problem)
    in_phase = None
    finished = _parse_time((examined.predicate or {}).get("finished_at"))
    if start is not None and finished is not None:
        in_phase = max((finished - start).total_seconds(), 0.0)
    signoffs: dict[str, dict[str, Any]] = {}
    waivers = []
    for entry in sorted(attestations, key=lambda a: str(a.get("signed_at"))):
        kind = entry.get("kind")
        by = _optional_text(entry.get("by"))
        if kind == "signoff":
            item = str(entry.get("subject"))
            found = signoffs.setdefault(item, {"item": item, "count": 0, "by": [], "sessions": []})
            found["count"] += 1
            session = _optional_text(entry.get("session"))
            if by is not None and by not in found["by"]:
                found["by"].append(by)
            if session is not None and session not in found["sessions"]:
                found["sessions"].append(session)
        elif kind == "waiver" and entry.get("phase") in (None, phase):
            until = _optional_text(entry.get("until"))
            moment = _parse_time(until)
            waivers.append(
                {
                    "gate": str(entry.get("subject")),
                    "until": until,
                    "by": by,
                    "phase": _optional_text(entry.get("phase")),
                    "expired": moment is not None and moment <= now,
                }
            )
    return _CustodySummary(
        bundle=name,
        state="read",
        phase_start=start_text,
        in_phase_s=in_phase,
        signoffs=tuple(signoffs[item] for item in sorted(signoffs)),
        waivers=tuple(waivers),
    )


def chain_status(
    reports_dir: Path,
    migration: str,
    phases: Sequence[str],
    requires: Mapping[str, str],
    trusted_keys: Mapping[str, Key],
    *,
    now: datetime | None = None,
) -> list[PhaseStatus]:
    """One :class:`PhaseStatus` per phase, in the order given.

    ``blocks`` lists why the phase's newest bundle cannot be promoted (none, does not verify,
    simulated, partial, not promotable with the statement's reasons, older than the newest
    rollback, runbook numbers the config loosened) and, for a phase in ``requires``, why there
    is no predecessor link for it to rely on (judged against the endpoints of the phase's newest
    verified bundle, if any).

    The time in phase, sign-offs and waivers come from the ``custody.json`` of the phase's
    newest bundle that verifies (VALID), read only as the statement signs it; one that cannot
    be read adds "custody.json unreadable: <why>" to ``blocks``. A waiver whose ``until`` is not
    after ``now`` (default: the wall clock) is marked expired.
    """
    when = now if now is not None else clock.wall_now()
    _check_name(migration, "migration")
    rollback = latest_rollback(reports_dir, migration, trusted_keys)
    not_before = rollback.finished_at if rollback else None
    statuses = []
    for phase in phases:
        _check_name(phase, "phase")
        bundles = _bundle_dirs(Path(reports_dir) / migration / phase)
        examined = _examine(bundles[0], migration, phase, trusted_keys) if bundles else None
        blocks: list[str] = []
        if not trusted_keys:
            blocks.append("no trusted keys: none given, so no bundle can count")
        if examined is None:
            blocks.append(f"no {phase} bundle")
        else:
            is_rollback = phase == ROLLBACK_PHASE
            blocks += _refusals(
                examined,
                endpoints=None,
                not_before=None if is_rollback else not_before,
                promotion=not is_rollback,
            )
        predicate = examined.predicate if examined and examined.ok else None
        predecessor = requires.get(phase)
        link = None
        if predecessor is not None:
            endpoints = _peer_endpoints(predicate) if predicate else None
            found = find_link(
                reports_dir,
                migration,
                predecessor,
                trusted_keys,
                endpoints=endpoints,
                not_before=not_before,
            )
            if isinstance(found, Link):
                link = found
            elif trusted_keys:
                blocks.append(describe_refusal(predecessor, found, trusted_keys) or "")
        loosened = predicate.get("loosened") if predicate else None
        for entry in loosened if isinstance(loosened, list) else []:
            blocks.append(f"loosened: {entry}")
        verified = examined if examined is not None and examined.ok else None
        if verified is None and trusted_keys:
            for bundle in bundles[1:]:
                older = _examine(bundle, migration, phase, trusted_keys)
                if older.ok:
                    verified = older
                    break
        custody = _summarize_custody(verified, phase, when)
        if custody.problem is not None:
            blocks.append(f"{CUSTODY_NAME} unreadable: {custody.problem}")
        claimed = examined.predicate if examined else None
        verdict = claimed.get("verdict") if claimed else None
        statuses.append(
            PhaseStatus(
                phase=phase,
                latest=examined.bundle.name if examined else None,
                status=examined.status if examined else None,
                verdict=verdict if isinstance(verdict, str) else None,
                signer_keyid=examined.signer_keyid if examined else None,
                requires=predecessor,
                relies_on=link,
                blocks=tuple(blocks),
                custody_from=custody.bundle,
                custody=custody.state,
                phase_start=custody.phase_start,
                in_phase_s=custody.in_phase_s,
                signoffs=custody.signoffs,
                waivers=custody.waivers,
            )
        )
    return statuses


def _safe(text: object) -> str:
    """``text`` with every control, format or unassigned character escaped (never raw)."""
    out = []
    for char in str(text):
        if unicodedata.category(char).startswith("C"):
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def _cell(text: object, width: int) -> str:
    value = _safe(text)
    if len(value) > width:
        value = value[: width - 1] + "…"
    return value.ljust(width)


_COLUMNS = (("PHASE", 8), ("LATEST BUNDLE", 22), ("VERDICT", 12), ("SIGNER", 8))
_RELIES_WIDTH = 24


def _label(reason: str) -> str:
    """The short name of a reason: the text before its first colon."""
    return reason.split(":", 1)[0]


def format_status(migration: str, statuses: Sequence[PhaseStatus]) -> str:
    """The ``canarygate status`` text: one line per phase (what blocks it by the short name of
    each reason), then every reason in full; every line fits in 100 columns and untrusted text
    (bundle names, reasons) is escaped."""
    header = [_cell(name, width) for name, width in _COLUMNS]
    header += [_cell("RELIES ON", _RELIES_WIDTH), "BLOCKED BY"]
    lines = [_cut(f"chain of {_safe(migration)}"), " ".join(header).rstrip()]
    room = _WIDTH - sum(width + 1 for _, width in _COLUMNS) - _RELIES_WIDTH - 1
    for entry in statuses:
        verdict = entry.verdict if entry.status == "VALID" else entry.status
        if entry.requires is None:
            relies = "-"
        elif entry.relies_on is None:
            relies = f"{entry.requires}: none"
        else:
            relies = f"{entry.requires}:{entry.relies_on.name}"
        labels = list(dict.fromkeys(_label(reason) for reason in entry.blocks))
        if not labels:
            blocks = "nothing"
        else:
            more = f" +{len(labels) - 1}" if len(labels) > 1 else ""
            blocks = _cell(labels[0], room - len(more)).rstrip() + more
        row = [
            _cell(entry.phase, 8),
            _cell(entry.latest or "-", 22),
            _cell(verdict or "-", 12),
            _cell((entry.signer_keyid or "-")[:8], 8),
            _cell(relies, _RELIES_WIDTH),
            blocks,
        ]
        lines.append(" ".join(row).rstrip())
    with_custody = [entry for entry in statuses if entry.custody_from]
    if with_custody:
        lines += ["", "custody (the latest verified bundle's custody.json):"]
        for entry in with_custody:
            lines += _custody_lines(entry)
    blocked = [entry for entry in statuses if entry.blocks]
    if blocked:
        lines += ["", "blocked:"]
        for entry in blocked:
            latest = f" (latest {entry.latest})" if entry.latest else ""
            lines += _wrap(f"{entry.phase}{latest}:", "  ", "    ")
            for reason in entry.blocks:
                lines += _wrap(reason, "    - ", "      ")
    return "\n".join(lines)


def _span(seconds: float) -> str:
    """``45m``, ``26h``, ``170h (7.0d)``: rounded down, never more than was covered."""
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours}h ({int(seconds // 8640) / 10:.1f}d)"


def _until(text: str | None) -> str:
    if text is None:
        return "no end"
    return text[: -len(_END_OF_DAY)] if text.endswith(_END_OF_DAY) else text


def _custody_lines(entry: PhaseStatus) -> list[str]:
    """The wrapped lines of one phase in the custody section."""
    head = f"{entry.phase} ({entry.custody_from}):"
    if entry.custody == "absent":
        return _wrap(
            f"{head} no {CUSTODY_NAME} (a bundle from before custody records)", "  ", "    "
        )
    if entry.custody != "read":
        return _wrap(f"{head} {CUSTODY_NAME} unreadable (see blocked)", "  ", "    ")
    if entry.phase_start is None:
        span = "not started"
    elif entry.in_phase_s is None:
        span = f"started {entry.phase_start}"
    else:
        span = f"in phase {_span(entry.in_phase_s)} (from {entry.phase_start} to its finish)"
    lines = _wrap(f"{head} {span}", "  ", "    ")
    signoffs = [
        f"{s['item']} x{s['count']}" + (f" ({', '.join(s['by'])})" if s["by"] else "")
        for s in entry.signoffs or ()
    ]
    lines += _wrap(f"sign-offs: {'; '.join(signoffs) or 'none'}", "    ", "      ")
    waivers = []
    for waiver in entry.waivers or ():
        who = [w for w in (waiver["by"], "expired" if waiver["expired"] else None) if w]
        waivers.append(
            f"{waiver['gate']} until {_until(waiver['until'])}"
            + (f" ({', '.join(who)})" if who else "")
        )
    lines += _wrap(f"waivers: {'; '.join(waivers) or 'none'}", "    ", "      ")
    return lines


def _wrap(text: str, first: str, rest: str) -> list[str]:
    return textwrap.wrap(
        _safe(text),
        width=_WIDTH,
        initial_indent=first,
        subsequent_indent=rest,
        break_on_hyphens=False,
        break_long_words=True,
    )


def _cut(line: str) -> str:
    return line if len(line) <= _WIDTH else line[: _WIDTH - 1] + "…"


# --- verify --chain -----------------------------------------------------------------------


@dataclass(frozen=True)
class LinkCheck:
    """The check of one phase's link to its predecessor: ``state`` is OK, BROKEN, or NONE
    (the phase has no promotable bundle yet: nothing relies on the predecessor)."""

    phase: str
    requires: str
    state: str
    bundle: str | None
    link: Link | None
    reasons: tuple[str, ...]

    @property
    def broken(self) -> bool:
        return self.state == "BROKEN"

    def as_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "requires": self.requires,
            "state": self.state,
            "bundle": self.bundle,
            "link": self.link.as_json() if self.link else None,
            "reasons": list(self.reasons),
        }


def check_links(
    reports_dir: Path,
    migration: str,
    requires: Mapping[str, str],
    trusted_keys: Mapping[str, Key],
) -> list[LinkCheck]:
    """Check the recorded link of every phase folder present that has a predecessor.

    The phase's newest promotable bundle (as :func:`find_link` picks it, with no endpoint or
    rollback constraint) must list in ``relies_on`` a predecessor bundle that counts as a link
    judged against the same endpoints, whose envelope digest is the one recorded, that finished
    before the phase bundle started, and that no verified rollback finished between the two.
    """
    _check_name(migration, "migration")
    rollbacks = _rollbacks(reports_dir, migration, trusted_keys, ROLLBACK_PHASE)
    checks = []
    for phase in list_phases(reports_dir, migration):
        predecessor = requires.get(phase)
        if predecessor is None:
            continue
        examined = _find(
            reports_dir, migration, phase, trusted_keys, endpoints=None, not_before=None
        )
        if not isinstance(examined, _Examined):
            why = (
                f"nothing to check: no {phase} bundle counts",
                *(f"{c.bundle.name}: {', '.join(c.reasons)}" for c in examined),
            )
            checks.append(LinkCheck(phase, predecessor, "NONE", None, None, why))
            continue
        link, reasons = _check_recorded_link(
            reports_dir, migration, predecessor, examined, rollbacks, trusted_keys
        )
        state = "OK" if link is not None else "BROKEN"
        checks.append(
            LinkCheck(phase, predecessor, state, examined.bundle.name, link, tuple(reasons))
        )
    return checks


def _check_recorded_link(
    reports_dir: Path,
    migration: str,
    predecessor: str,
    examined: _Examined,
    rollbacks: Sequence[Link],
    trusted_keys: Mapping[str, Key],
) -> tuple[Link | None, list[str]]:
    predicate = examined.predicate or {}
    started = _parse_time(predicate.get("started_at"))
    if started is None:
        return None, [f"started_at {predicate.get('started_at')!r} is not an ISO UTC time"]
    recorded = predicate.get("relies_on")
    entries = [
        e
        for e in (recorded if isinstance(recorded, list) else [])
        if isinstance(e, dict) and e.get("phase") == predecessor
    ]
    if not entries:
        return None, [f"relies_on lists no {predecessor} bundle"]
    endpoints = _peer_endpoints(predicate)
    reasons: list[str] = []
    for entry in entries:
        name = entry.get("bundle")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            reasons.append(f"relies_on names bundle {name!r}, not a bundle folder name")
            continue
        bundle = Path(reports_dir) / migration / predecessor / name
        if not os.path.lexists(bundle) or not _trusted_folder(bundle.parent):
            reasons.append(f"{name}: relied on, but no such {predecessor} bundle")
            continue
        target = _examine(bundle, migration, predecessor, trusted_keys)
        refusals = _refusals(target, endpoints=endpoints, not_before=None)
        if target.digest != entry.get("digest"):
            refusals.append(
                f"its envelope digest {target.digest} is not the one relies_on records "
                f"({entry.get('digest')})"
            )
        finished = _parse_time((target.predicate or {}).get("finished_at"))
        if finished is not None and finished >= started:
            refusals.append(
                f"finished {(target.predicate or {}).get('finished_at')}, "
                f"not before the {examined.bundle.parent.name} bundle started "
                f"({predicate.get('started_at')})"
            )
        for rollback in rollbacks:
            moment = _parse_time(rollback.finished_at)
            if moment is None or finished is None or not finished <= moment < started:
                continue
            refusals.append(
                f"invalidated by rollback {rollback.name} (finished {rollback.finished_at}) "
                "before the phase ran"
            )
            break
        if not refusals:
            return _as_link(target, predecessor), []
        reasons.append(f"{name}: {', '.join(refusals)}")
    return None, reasons


def format_link_checks(migration: str, checks: Sequence[LinkCheck]) -> str:
    """The ``canarygate verify --chain`` text (untrusted text escaped)."""
    lines = [f"chain of {_safe(migration)}:"]
    if not checks:
        lines.append("  no phase folder with a predecessor: no link to check")
    for check in checks:
        head = f"{check.state:<6} {_safe(check.phase)} <- {_safe(check.requires)}"
        if check.link is not None:
            head += f": {_safe(check.bundle)} relies on {_safe(check.link.name)}"
            head += f" (sha256 {check.link.digest[:16]}…)"
        elif check.bundle is not None:
            head += f": {_safe(check.bundle)}"
        lines += _wrap(head, "  ", "         ")
        for reason in check.reasons:
            lines += _wrap(reason, "         - ", "           ")
    return "\n".join(lines)


# --- canarygate status --------------------------------------------------------------------


def _load_keys_option(directory: str | None) -> dict[str, Key]:
    """The keys of ``--trusted-keys DIR`` (empty without one)."""
    from pytest_canarygate.keys import load_trusted_keys

    return dict(load_trusted_keys(Path(directory))) if directory else {}


def _run_status(args: argparse.Namespace) -> int:
    from pytest_canarygate.keys import MalformedKeyError

    prog = "canarygate status"
    reports = Path(args.reports)
    try:
        _check_name(args.migration, "migration")
        phases = parse_phases(args.phases) if args.phases else None
        requires_text = args.requires or catalog_requires(Path.cwd())
        requires = parse_requires(requires_text) if requires_text else {}
        if not reports.is_dir():
            raise ConfigError(f"reports folder {reports}: no such directory")
        if not (reports / args.migration).is_dir():
            raise ConfigError(f"reports folder {reports}: no migration {args.migration!r} in it")
        trusted = _load_keys_option(args.trusted_keys)
    except MalformedKeyError as exc:
        print(f"{prog}: error: {_safe(exc)}", file=sys.stderr)
        return cli.EXIT_MALFORMED
    except ConfigError as exc:
        print(f"{prog}: error: {_safe(exc)}", file=sys.stderr)
        return cli.EXIT_USAGE
    try:
        if phases is None:
            phases = list_phases(reports, args.migration)
        statuses = chain_status(
            reports, args.migration, phases, requires, trusted, now=clock.wall_now()
        )
    except ChainError as exc:
        print(f"{prog}: error: {_safe(exc)}", file=sys.stderr)
        return cli.EXIT_FAILED
    if args.json:
        document = {
            "migration": args.migration,
            "reports": str(reports),
            "trusted_keys": sorted(trusted),
            "phases": [entry.as_json() for entry in statuses],
        }
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print(format_status(args.migration, statuses))
    return cli.EXIT_OK


def add_subcommand(subparsers: Any) -> None:
    """Add ``canarygate status``."""
    parser = subparsers.add_parser(
        "status",
        help="Print the chain of phase bundles so far, one line per phase",
        description="For each phase: its newest bundle (any verdict), its verdict and signer,\n"
        "the predecessor bundle it can rely on, and what blocks the next promotion.",
        epilog=f"exit codes: {cli.EXIT_OK} the archive was read (the status is information, "
        f"even when blocked); {cli.EXIT_FAILED} a reports folder is not trusted (owned by "
        f"someone else, or writable by group or others); {cli.EXIT_USAGE} usage error (bad "
        f"arguments, no such reports folder or migration, or key directory); "
        f"{cli.EXIT_MALFORMED} a key file that is not an Ed25519 public key. The full table "
        "is in `canarygate --help`.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("migration", metavar="MIGRATION", help="Migration id")
    add_archive_options(parser)
    parser.add_argument(
        "--trusted-keys",
        metavar="DIR",
        help="Directory of trusted public keys (without it no bundle verifies)",
    )
    parser.add_argument(
        "--phases",
        metavar="P,P,...",
        help="The phases, in order (default: the phase folders present)",
    )
    parser.add_argument("--json", action="store_true", help="Machine-readable output")
    parser.set_defaults(func=_run_status)


def add_archive_options(parser: argparse.ArgumentParser) -> None:
    """``--reports DIR`` and ``--requires PHASE=PREDECESSOR,...`` (shared with verify)."""
    parser.add_argument(
        "--reports", metavar="DIR", default="reports", help="Reports folder (default: reports)"
    )
    parser.add_argument(
        "--requires",
        metavar="PHASE=PRED,...",
        help="Which phase relies on which, e.g. canary=alpha,gradual=canary (default: none)",
    )


# Public names for what the custody record reads beyond links (a phase's archived runs).
bundle_dirs = _bundle_dirs
examine = _examine
refusals = _refusals
