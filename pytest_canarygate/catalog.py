"""The catalog: runbook items and the gates that judge them, one declarative TOML file.

It is read before collection, so the observation knows which methods the selected gates need,
and after the run, so the summary can say which items a verdict belongs to. ``canarygate
catalog`` prints it both ways: items against gates, and gates against items.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import re
import string
import sys
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from pytest_canarygate.errors import ConfigError
from pytest_canarygate.tomlfile import tomllib

STAGES = ("entry", "monitor", "exit", "rehearsal")
#: Stages whose gates run only when ``--canarygate-stage`` names the stage, never in a plain
#: ``--phase`` run: "rehearsal", the rollback dry-run (``--phase=rollback
#: --canarygate-stage=rehearsal``), judges the rollback's preconditions, not a rollback.
OPT_IN_STAGES = ("rehearsal",)
KINDS = (
    "prerequisite",
    "step",
    "exit",
    "checklist",
    "signal",
    "contract",
    "signoff",
    "post-rollback",
)
SEVERITIES = ("blocker", "critical", "normal", "minor", "trivial")
DEFAULT_CATALOG = Path("gates") / "catalog.toml"

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_FIXTURE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLACEHOLDER_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
_NEED_RE = re.compile(r"^(?P<daemon>[a-z0-9_]+):(?P<method>[A-Za-z0-9_.]+)(\*(?P<n>[1-9]))?$")


@dataclass(frozen=True)
class RunbookItem:
    """One checklist box of the runbook."""

    id: str
    section: str
    text: str
    kind: str
    phase: str
    stage: str
    pending: str | None = None
    #: For kind "signal" (required there, refused elsewhere): the runbook's action when the
    #: signal fires, e.g. "rollback immediately".
    action: str | None = None

    @property
    def anchor(self) -> str:
        """The Markdown anchor of the item's section (GitHub slug rules)."""
        slug = re.sub(r"[^\w\- ]", "", self.section.lower())
        return slug.replace(" ", "-")


@dataclass(frozen=True)
class Need:
    """A method the observation must read on a daemon, ``readings`` times."""

    daemon: str
    method: str
    readings: int = 1

    def __str__(self) -> str:
        suffix = f"*{self.readings}" if self.readings > 1 else ""
        return f"{self.daemon}:{self.method}{suffix}"


@dataclass(frozen=True)
class GateSpec:
    """One gate: the runbook item it judges and what evidence it needs."""

    id: str
    item: RunbookItem
    title: str
    phases: tuple[str, ...]
    needs: tuple[Need, ...]
    per: str | None
    severity: str
    #: judged from the archive of signed bundles and sign-offs rather than the daemons: such a
    #: gate is no monitor run of its own when time in phase is measured
    archive: bool = False

    @property
    def stage(self) -> str:
        """The stage of the runbook item (entry, monitor, exit or rehearsal)."""
        return self.item.stage

    def runs_in(self, phase: str, stage: str | None = None) -> bool:
        """Whether the gate runs in a run of ``phase`` narrowed to ``stage`` (None: the whole
        phase, which leaves out the gates of :data:`OPT_IN_STAGES`)."""
        if phase not in self.phases:
            return False
        return self.stage == stage if stage is not None else self.stage not in OPT_IN_STAGES


@dataclass(frozen=True)
class Catalog:
    """All runbook items and gates, indexed by id."""

    path: Path
    title: str
    document: str
    items: Mapping[str, RunbookItem]
    gates: Mapping[str, GateSpec]
    digest: str
    paths: tuple[Path, ...] = ()
    #: The runbook's phases, in order (``[runbook] phases``).
    phases: tuple[str, ...] = ()
    #: Glob patterns of the daemon methods gates may need: only those that read.
    read_only_methods: tuple[str, ...] = ()
    #: phase -> the phase whose signed bundle it requires (``[runbook] requires``).
    requires: Mapping[str, str] = field(default_factory=dict)
    #: The phase whose run decides a rollback from the signal items (``[runbook]
    #: decision_phase``; see :mod:`pytest_canarygate.decision`), or None.
    decision_phase: str | None = None

    def gates_for(self, phase: str, stage: str | None = None) -> list[GateSpec]:
        """The gates that run in ``phase`` (optionally only one stage), in catalog order; the
        whole phase (no stage) leaves out the gates of :data:`OPT_IN_STAGES`."""
        return [g for g in self.gates.values() if g.runs_in(phase, stage)]

    def gates_of_item(self, item_id: str) -> list[GateSpec]:
        """The gates that judge one item."""
        return [g for g in self.gates.values() if g.item.id == item_id]

    def link(self, item: RunbookItem) -> str:
        """Where the item lives in the runbook document."""
        return f"{self.document}#{item.anchor}"


def needs_of(gates: Iterable[GateSpec]) -> dict[str, dict[str, int]]:
    """Merge the needs of ``gates`` into ``{daemon: {method: readings}}``."""
    merged: dict[str, dict[str, int]] = {}
    for gate in gates:
        for need in gate.needs:
            methods = merged.setdefault(need.daemon, {})
            methods[need.method] = max(methods.get(need.method, 0), need.readings)
    return merged


def _require(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: missing or empty {key!r}")
    return value


def _choice(entry: Mapping[str, Any], key: str, choices: tuple[str, ...], where: str) -> str:
    value = _require(entry, key, where)
    if value not in choices:
        raise ConfigError(f"{where}: {key} = {value!r}; accepted: {', '.join(choices)}")
    return value


@dataclass(frozen=True)
class _Runbook:
    """The ``[runbook]`` table: what every item and gate is checked against."""

    title: str
    document: str
    phases: tuple[str, ...]
    read_only_methods: tuple[str, ...]
    requires: Mapping[str, str] = field(default_factory=dict)
    decision_phase: str | None = None

    def is_read_only(self, method: str) -> bool:
        return any(fnmatch.fnmatchcase(method, pattern) for pattern in self.read_only_methods)


def _strings(table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: [runbook] {key} must be a non-empty list of strings")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: [runbook] {key} lists a value twice")
    return tuple(value)


def _parse_runbook(data: Mapping[str, Any], where: str) -> _Runbook:
    runbook = data.get("runbook")
    if not isinstance(runbook, Mapping):
        raise ConfigError(f"{where}: missing table [runbook] (title, document, phases)")
    allowed = {"title", "document", "phases", "read_only_methods", "requires", "decision_phase"}
    unknown = sorted(set(runbook) - allowed)
    if unknown:
        raise ConfigError(f"{where}: [runbook] unknown key(s) {', '.join(unknown)}")
    phases = _strings(runbook, "phases", where)
    bad = [p for p in phases if not _ID_RE.match(p)]
    if bad:
        raise ConfigError(
            f"{where}: [runbook] phases: {bad[0]!r} may hold only letters, digits, . _ -"
        )
    return _Runbook(
        title=str(runbook.get("title", "runbook")),
        document=str(runbook.get("document", "")),
        phases=phases,
        read_only_methods=(
            _strings(runbook, "read_only_methods", where) if "read_only_methods" in runbook else ()
        ),
        requires=_requires(runbook.get("requires", {}), phases, where),
        decision_phase=_decision_phase(runbook, phases, where),
    )


def _decision_phase(runbook: Mapping[str, Any], phases: tuple[str, ...], where: str) -> str | None:
    """``[runbook] decision_phase``: the phase whose run decides a rollback, or None."""
    if "decision_phase" not in runbook:
        return None
    value = runbook["decision_phase"]
    if not isinstance(value, str) or value not in phases:
        raise ConfigError(
            f"{where}: [runbook] decision_phase = {value!r}: not one of the phases "
            f"({', '.join(phases)})"
        )
    return value


def _requires(value: Any, phases: tuple[str, ...], where: str) -> dict[str, str]:
    """``[runbook] requires``: phase -> the earlier phase whose signed bundle it needs."""
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(
            f'{where}: [runbook] requires must map a phase to a phase, e.g. {{ canary = "alpha" }}'
        )
    for phase, before in value.items():
        for name in (phase, before):
            if name not in phases:
                raise ConfigError(
                    f"{where}: [runbook] requires.{phase} = {before!r}: {name!r} is not one of "
                    f"the phases ({', '.join(phases)})"
                )
        if phases.index(before) >= phases.index(phase):
            raise ConfigError(
                f"{where}: [runbook] requires.{phase} = {before!r}: a phase can only require an "
                "earlier one"
            )
    return dict(value)


def _parse_item(entry: Mapping[str, Any], runbook: _Runbook, where: str) -> RunbookItem:
    allowed = {"id", "section", "text", "kind", "phase", "stage", "pending", "action"}
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    item_id = _require(entry, "id", where)
    if not _ID_RE.match(item_id):
        raise ConfigError(f"{where}: id {item_id!r} may hold only letters, digits, . _ -")
    pending = entry.get("pending")
    if pending is not None and (not isinstance(pending, str) or not pending.strip()):
        raise ConfigError(f"{where}: pending must be a non-empty reason")
    section = _require(entry, "section", where)
    text = _require(entry, "text", where)
    kind = _choice(entry, "kind", KINDS, where)
    return RunbookItem(
        id=item_id,
        section=section,
        text=text,
        kind=kind,
        phase=_choice(entry, "phase", runbook.phases, where),
        stage=_choice(entry, "stage", STAGES, where),
        pending=pending,
        action=_action(entry, item_id, kind, where),
    )


def _action(entry: Mapping[str, Any], item_id: str, kind: str, where: str) -> str | None:
    """``action``: what the runbook says to do when a signal fires; only, and always, on
    items of kind "signal"."""
    action = entry.get("action")
    if kind != "signal":
        if "action" in entry:
            raise ConfigError(
                f"{where}: item {item_id}: key 'action' is only for items of kind \"signal\" "
                f"(this one is {kind!r})"
            )
        return None
    if not isinstance(action, str) or not action.strip():
        raise ConfigError(
            f"{where}: item {item_id}: a signal needs key 'action', a non-empty string: the "
            'runbook\'s action when it fires, e.g. action = "rollback immediately"'
        )
    return action


def _parse_gate(
    entry: Mapping[str, Any], items: Mapping[str, RunbookItem], runbook: _Runbook, where: str
) -> GateSpec:
    allowed = {"id", "item", "title", "phases", "needs", "per", "severity", "archive"}
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    gate_id = _require(entry, "id", where)
    if not _ID_RE.match(gate_id):
        raise ConfigError(f"{where}: id {gate_id!r} may hold only letters, digits, . _ -")
    item_id = _require(entry, "item", where)
    if item_id not in items:
        raise ConfigError(f"{where}: item {item_id!r} is not a runbook item of this catalog")
    item = items[item_id]
    if item.pending:
        raise ConfigError(
            f"{where}: item {item_id} is marked pending ({item.pending}) but has a gate; "
            "remove its pending line"
        )
    phases = entry.get("phases", [item.phase])
    if not isinstance(phases, list) or not phases or any(p not in runbook.phases for p in phases):
        raise ConfigError(
            f"{where}: phases = {phases!r}; accepted: a list of {', '.join(runbook.phases)}"
        )
    raw_needs = entry.get("needs", [])
    if not isinstance(raw_needs, list):
        raise ConfigError(f"{where}: needs must be a list of '<daemon>:<method>' strings")
    needs = []
    for raw in raw_needs:
        match = _NEED_RE.match(raw) if isinstance(raw, str) else None
        if not match:
            raise ConfigError(
                f"{where}: need {raw!r} is not '<daemon>:<method>' or '<daemon>:<method>*<n>'"
            )
        if match["daemon"] != "evidence" and not runbook.is_read_only(match["method"]):
            accepted = ", ".join(runbook.read_only_methods) or "none declared"
            raise ConfigError(
                f"{where}: need {raw!r}: gates only observe, and {match['method']} is not a "
                f"read-only method of [runbook] read_only_methods ({accepted})"
            )
        needs.append(Need(match["daemon"], match["method"], int(match["n"] or 1)))
    per = entry.get("per")
    if per is not None and (not isinstance(per, str) or not _FIXTURE_RE.match(per)):
        raise ConfigError(
            f"{where}: per = {per!r}; accepted: the name of a fixture the pack parametrizes"
        )
    default_severity = "blocker" if item.kind in ("exit", "signal") else "critical"
    severity = entry.get("severity", default_severity)
    if severity not in SEVERITIES:
        raise ConfigError(f"{where}: severity = {severity!r}; accepted: {', '.join(SEVERITIES)}")
    title = _require(entry, "title", where)
    _title_fields(title, f"{where}: gate {gate_id}")
    return GateSpec(
        id=gate_id,
        item=item,
        title=title,
        phases=tuple(phases),
        needs=tuple(needs),
        per=per,
        severity=severity,
        archive=_flag(entry, "archive", where),
    )


def _title_fields(title: str, where: str) -> list[str]:
    """The ``{name}`` placeholders of a gate title (filled from the pack's settings when a run
    shows it, so a title says "48h" only when the config does); nothing else in braces."""
    try:
        parts = list(string.Formatter().parse(title))
    except ValueError as exc:
        raise ConfigError(f"{where}: title {title!r}: {exc} (write {{{{ for a brace)") from None
    fields = []
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if not _PLACEHOLDER_RE.match(name) or spec or conversion:
            raise ConfigError(
                f"{where}: title {title!r}: placeholder {{{name}}} must be a plain name like "
                "{canary_duration}"
            )
        fields.append(name)
    return fields


def render_title(gate: GateSpec, values: Mapping[str, str]) -> str:
    """The gate's title with its placeholders filled; ConfigError names one the pack does not
    fill."""
    unknown = [f for f in _title_fields(gate.title, f"gate {gate.id}") if f not in values]
    if unknown:
        known = ", ".join(sorted(values)) or "none"
        raise ConfigError(
            f"gate {gate.id}: title placeholder {{{unknown[0]}}} is not one the pack fills "
            f"(it fills: {known})"
        )
    return gate.title.format_map(values)


def _flag(entry: Mapping[str, Any], key: str, where: str) -> bool:
    value = entry.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {key} = {value!r}; expected true or false")
    return value


def load_catalog(path: Path) -> Catalog:
    """Read and validate the catalog at ``path``."""
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"gate catalog {path} cannot be read: {exc.strerror}") from None
    try:
        data = tomllib.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    runbook = _parse_runbook(data, str(path))
    items: dict[str, RunbookItem] = {}
    for index, entry in enumerate(data.get("item", [])):
        item = _parse_item(entry, runbook, f"{path}: item #{index + 1}")
        if item.id in items:
            raise ConfigError(f"{path}: item id {item.id} appears twice")
        items[item.id] = item
    gates: dict[str, GateSpec] = {}
    for index, entry in enumerate(data.get("gate", [])):
        gate = _parse_gate(entry, items, runbook, f"{path}: gate #{index + 1}")
        if gate.id in gates:
            raise ConfigError(f"{path}: gate id {gate.id} appears twice")
        gates[gate.id] = gate
    ungated = [
        i.id
        for i in items.values()
        if not i.pending and not any(g.item.id == i.id for g in gates.values())
    ]
    if ungated:
        raise ConfigError(
            f"{path}: item(s) {', '.join(ungated)} have no gate and no pending reason"
        )
    return Catalog(
        path=path,
        title=runbook.title,
        document=runbook.document,
        items=items,
        gates=gates,
        digest=hashlib.sha256(blob).hexdigest(),
        paths=(path,),
        phases=runbook.phases,
        read_only_methods=runbook.read_only_methods,
        requires=runbook.requires,
        decision_phase=runbook.decision_phase,
    )


def load_catalogs(paths: Iterable[Path]) -> Catalog:
    """Load the main catalog (first path) and merge the others into it; ids must not clash.
    A merged gate may judge an item of any of the catalogs."""
    first, *rest = list(paths)
    merged = load_catalog(first)
    if not rest:
        return merged
    items = dict(merged.items)
    gates = dict(merged.gates)
    digests = [merged.digest]
    runbook = _Runbook(
        merged.title, merged.document, merged.phases, merged.read_only_methods, merged.requires
    )
    for path in rest:
        try:
            blob = path.read_bytes()
            data = tomllib.loads(blob.decode("utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"extra gate catalog {path} cannot be read: {exc}") from None
        for index, entry in enumerate(data.get("item", [])):
            item = _parse_item(entry, runbook, f"{path}: item #{index + 1}")
            if item.id in items:
                raise ConfigError(f"{path}: item id {item.id} is already defined")
            items[item.id] = item
        for index, entry in enumerate(data.get("gate", [])):
            gate = _parse_gate(entry, items, runbook, f"{path}: gate #{index + 1}")
            if gate.id in gates:
                raise ConfigError(f"{path}: gate id {gate.id} is already defined")
            gates[gate.id] = gate
        digests.append(hashlib.sha256(blob).hexdigest())
    return Catalog(
        path=merged.path,
        title=merged.title,
        document=merged.document,
        items=items,
        gates=gates,
        digest=hashlib.sha256(" ".join(digests).encode()).hexdigest(),
        paths=(merged.path, *rest),
        phases=merged.phases,
        read_only_methods=merged.read_only_methods,
        requires=merged.requires,
        decision_phase=merged.decision_phase,
    )


def find_catalog(start: Path) -> Path:
    """Find ``gates/catalog.toml`` in ``start`` or one of its parents."""
    for folder in (start, *start.parents):
        candidate = folder / DEFAULT_CATALOG
        if candidate.is_file():
            return candidate
    raise ConfigError(f"no {DEFAULT_CATALOG} in {start} or its parents; pass --catalog=PATH")


def render_items(catalog: Catalog, phase: str | None = None) -> str:
    """Runbook items against their gates, grouped by phase."""
    lines = [catalog.title, ""]
    for ph in catalog.phases if phase is None else (phase,):
        phase_items = [i for i in catalog.items.values() if i.phase == ph]
        if not phase_items:
            continue
        lines.append(f"phase {ph}")
        for item in phase_items:
            lines.append(f"  {item.id:<7} [{item.stage:<7}] {item.text}")
            gates = catalog.gates_of_item(item.id)
            if item.pending:
                lines.append(f"  {'':<7}  -> PENDING: {item.pending}")
            for gate in gates:
                extra = f" (per {gate.per})" if gate.per else ""
                lines.append(f"  {'':<7}  -> {gate.id}{extra}")
        lines.append("")
    gated = sum(1 for i in catalog.items.values() if not i.pending)
    lines.append(
        f"{len(catalog.items)} runbook items: {gated} gated by {len(catalog.gates)} gates, "
        f"{len(catalog.items) - gated} pending"
    )
    return "\n".join(lines)


def render_gates(catalog: Catalog, phase: str | None = None) -> str:
    """Gates against the runbook items they judge."""
    lines = []
    for gate in catalog.gates.values():
        if phase and phase not in gate.phases:
            continue
        lines.append(
            f"{gate.id:<40} {gate.item.id:<7} {','.join(gate.phases):<14} "
            f"{gate.stage:<7} {gate.severity:<8} {' '.join(str(n) for n in gate.needs)}"
        )
    return "\n".join(lines)


def catalog_as_json(catalog: Catalog) -> dict[str, Any]:
    """A JSON-ready form of the catalog."""
    return {
        "title": catalog.title,
        "digest": catalog.digest,
        "decision_phase": catalog.decision_phase,
        "items": [
            {
                "id": i.id,
                "phase": i.phase,
                "stage": i.stage,
                "kind": i.kind,
                "section": i.section,
                "text": i.text,
                "pending": i.pending,
                "action": i.action,
                "gates": [g.id for g in catalog.gates_of_item(i.id)],
            }
            for i in catalog.items.values()
        ],
        "gates": [
            {
                "id": g.id,
                "item": g.item.id,
                "title": g.title,
                "phases": list(g.phases),
                "stage": g.stage,
                "severity": g.severity,
                "per": g.per,
                "needs": [str(n) for n in g.needs],
            }
            for g in catalog.gates.values()
        ],
    }


def _run(args: argparse.Namespace) -> int:
    from pytest_canarygate.cli import EXIT_MALFORMED
    from pytest_canarygate.cli import EXIT_OK
    from pytest_canarygate.cli import EXIT_USAGE

    try:
        path = Path(args.catalog) if args.catalog else find_catalog(Path.cwd())
    except ConfigError as exc:
        print(f"canarygate catalog: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not path.is_file():
        print(f"canarygate catalog: gate catalog {path} does not exist", file=sys.stderr)
        return EXIT_USAGE
    try:
        catalog = load_catalog(path)
    except ConfigError as exc:
        print(f"canarygate catalog: {exc}", file=sys.stderr)
        return EXIT_MALFORMED
    if args.phase is not None and args.phase not in catalog.phases:
        print(
            f"canarygate catalog: --phase {args.phase}: not a phase of {path}; "
            f"known: {', '.join(catalog.phases)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.json:
        print(json.dumps(catalog_as_json(catalog), indent=2))
    elif args.gates:
        print(render_gates(catalog, args.phase))
    else:
        print(render_items(catalog, args.phase))
    return EXIT_OK


def add_subcommand(subparsers: Any) -> None:
    """Add ``canarygate catalog``."""
    parser = subparsers.add_parser(
        "catalog",
        help="Print runbook items against gates (or gates against items)",
        description="Print every runbook item with the gates that judge it; pending items "
        "say why they have no gate yet.",
    )
    parser.add_argument(
        "--catalog", metavar="PATH", help="Catalog file (default: gates/catalog.toml)"
    )
    parser.add_argument("--phase", help="Only this phase (one of the catalog's phases)")
    parser.add_argument("--gates", action="store_true", help="List gates against items instead")
    parser.add_argument("--json", action="store_true", help="Machine-readable output")
    parser.set_defaults(func=_run)
