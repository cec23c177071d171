"""Load and validate ``canarygate.toml`` into a frozen :class:`CanarygateConfig`.

Every mistake raises :class:`~pytest_canarygate.errors.ConfigError` naming the file, the key,
the bad value and what is accepted; the plugin turns it into one ``pytest.UsageError`` line.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pytest_canarygate.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

CONFIG_FILENAME = "canarygate.toml"
DAEMON_NAMES = ("v4", "v5")
MIGRATION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

DEFAULT_PANE_FIELDS = (
    "pane_id",
    "presence",
    "evidence_mode",
    "activity_state",
    "provider",
    "signature_class",
)
DEFAULT_PANE_IGNORE = ("updated_at", "conversation_title", "git_branch")
DEFAULT_SESSION_FIELDS = ("session_key", "evidence_mode", "winner_tier", "activity_state")
DEFAULT_SESSION_IGNORE = ("updated_at", "deterministic_last_seen")
DEFAULT_EXPECTED_HEALTHY = ("claude_hooks", "claude_jsonl", "codex_appserver", "poller")


@dataclass(frozen=True)
class DaemonConfig:
    """One daemon to observe: its name (``v4``/``v5``) and endpoint URI."""

    name: str
    endpoint: str


@dataclass(frozen=True)
class ParityConfig:
    """Which fields a parity gate compares; ``fields=None`` means every field not ignored."""

    fields: tuple[str, ...] | None
    ignore: tuple[str, ...]

    def compared(self, keys: set[str]) -> list[str]:
        """The fields to compare, given the union of keys seen on both sides."""
        chosen = keys if self.fields is None else set(self.fields)
        return sorted(chosen - set(self.ignore))


@dataclass(frozen=True)
class Windows:
    """Time windows of the runbook, in hours (config ``[windows]``)."""

    alpha_monitor_h: float = 24.0
    canary_duration_h: float = 48.0
    gradual_days: float = 7.0
    cutover_stable_days: float = 7.0
    escalate_days: float = 7.0
    archive_retention_days: float = 30.0

    def longest(self) -> timedelta:
        """The longest window, which bounds how much history is asked for."""
        hours = [self.alpha_monitor_h, self.canary_duration_h]
        days = [self.gradual_days * 2, self.cutover_stable_days, self.escalate_days]
        return max(timedelta(hours=max(hours)), timedelta(days=max(days)))


@dataclass(frozen=True)
class Thresholds:
    """Numbers the runbook and daemon facts fix (config ``[thresholds]``)."""

    latency_p95_ms: int = 3000
    breach_windows: int = 3
    snapshot_max_age_ms: int = 600_000
    snapshot_interval_ms: int = 300_000
    min_build_tests: int = 456
    escalate_persist_min: float = 5.0
    coverage_lag_min: float = 5.0


@dataclass(frozen=True)
class CanarygateConfig:
    """The validated configuration of one run."""

    path: Path | None
    migration_id: str
    daemons: Mapping[str, DaemonConfig]
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 5.0
    expected_healthy_sources: tuple[str, ...] = DEFAULT_EXPECTED_HEALTHY
    pane_parity: ParityConfig = ParityConfig(DEFAULT_PANE_FIELDS, DEFAULT_PANE_IGNORE)
    session_parity: ParityConfig = ParityConfig(DEFAULT_SESSION_FIELDS, DEFAULT_SESSION_IGNORE)
    version_interval_s: float = 1.0
    catalog_path: Path | None = None
    reports_dir: Path | None = None
    evidence: Mapping[str, str] = field(default_factory=dict)
    windows: Windows = Windows()
    thresholds: Thresholds = Thresholds()
    digest: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)

    def evidence_uri(self, kind: str) -> str | None:
        """Where to read ``kind`` of evidence: the ``[evidence]`` entry, else the v5 daemon's
        socket for the kinds its operations methods may serve, else None."""
        if kind in self.evidence:
            return self.evidence[kind]
        if kind in RPC_EVIDENCE_KINDS and "v5" in self.daemons:
            return self.daemons["v5"].endpoint
        return None

    @property
    def where(self) -> str:
        """How to name this config in messages."""
        return str(self.path) if self.path else "built-in defaults"


class _Reader:
    """Typed access to one TOML table that reports mistakes with file and key."""

    def __init__(self, source: str, table: Mapping[str, Any], prefix: str = "") -> None:
        self.source = source
        self.table = table
        self.prefix = prefix

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str, value: object, expected: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.key(name)} = {value!r}: expected {expected}")

    def reject_unknown(self, allowed: tuple[str, ...]) -> None:
        for name in self.table:
            if name not in allowed:
                accepted = ", ".join(allowed)
                raise ConfigError(
                    f"{self.source}: unknown key {self.key(name)!r}; accepted here: {accepted}"
                )

    def sub(self, name: str, *, required: bool = False) -> _Reader:
        value = self.table.get(name)
        if value is None:
            if required:
                raise ConfigError(f"{self.source}: missing table [{self.key(name)}]")
            value = {}
        if not isinstance(value, Mapping):
            raise self.error(name, value, "a table")
        return _Reader(self.source, value, self.key(name))

    def string(self, name: str, default: str | None = None) -> str:
        value = self.table.get(name, default)
        if value is None:
            raise ConfigError(f"{self.source}: missing key {self.key(name)!r}")
        if not isinstance(value, str) or not value.strip():
            raise self.error(name, value, "a non-empty string")
        return value

    def positive_float(self, name: str, default: float, maximum: float) -> float:
        value = self.table.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(name, value, f"a number of seconds, > 0 and <= {maximum:g}")
        if not 0 < value <= maximum:
            raise self.error(name, value, f"a number of seconds, > 0 and <= {maximum:g}")
        return float(value)

    def strings(self, name: str, default: tuple[str, ...] | None) -> tuple[str, ...] | None:
        value = self.table.get(name)
        if value is None:
            return default
        if value == "*":
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(name, value, 'a list of non-empty strings (or "*" for all)')
        return tuple(value)


def _endpoint(reader: _Reader, name: str) -> str:
    from pytest_canarygate.endpoints import parse_endpoint

    raw = reader.string(name)
    try:
        endpoint = parse_endpoint(raw)
    except ConfigError as exc:
        raise ConfigError(f"{reader.source}: {reader.key(name)}: {exc}") from None
    if endpoint.scheme != "unix":
        raise reader.error(
            name,
            raw,
            "unix:///absolute/path/to/agtmuxd.sock (daemons speak JSON-RPC over their Unix socket)",
        )
    return endpoint.uri


def _parity(reader: _Reader, fields: tuple[str, ...], ignore: tuple[str, ...]) -> ParityConfig:
    reader.reject_unknown(("fields", "ignore"))
    chosen = reader.strings("fields", fields)
    ignored = reader.strings("ignore", ignore) or ()
    overlap = sorted(set(chosen or ()) & set(ignored))
    if overlap:
        raise ConfigError(
            f"{reader.source}: [{reader.prefix}] lists {', '.join(overlap)} in both fields and "
            "ignore; a field is either compared or ignored"
        )
    return ParityConfig(chosen, ignored)


#: Upper bound for [windows] and [thresholds] numbers: rejects inf/nan and absurd values that
#: would overflow date arithmetic.
MAX_SETTING = 10**10

#: Kinds of evidence a v5 daemon may serve over its own socket (docs/operations-contract.md).
RPC_EVIDENCE_KINDS = ("snapshots", "supervisor", "alerts", "cursor", "binding", "selector")


def _numbers(reader: _Reader, cls: type[Any]) -> Any:
    """Read every field of the dataclass ``cls`` from ``reader`` as a positive number."""
    from dataclasses import fields as dc_fields

    names = tuple(f.name for f in dc_fields(cls))
    reader.reject_unknown(names)
    values: dict[str, Any] = {}
    for f in dc_fields(cls):
        if f.name not in reader.table:
            continue
        value = reader.table[f.name]
        is_int = f.type in ("int", int)
        ok_type = isinstance(value, int) if is_int else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type or not 0 < value <= MAX_SETTING:
            kind = "a positive integer" if is_int else "a positive number"
            raise reader.error(f.name, value, f"{kind} no larger than {MAX_SETTING:g}")
        values[f.name] = value
    return cls(**values)


def _evidence(reader: _Reader) -> dict[str, str]:
    from pytest_canarygate.agtmux.providers.registry import INTERFACES
    from pytest_canarygate.endpoints import parse_endpoint

    reader.reject_unknown(tuple(INTERFACES))
    uris = {}
    for kind in reader.table:
        raw = reader.string(kind)
        try:
            uris[kind] = parse_endpoint(raw).uri
        except ConfigError as exc:
            raise ConfigError(f"{reader.source}: {reader.key(kind)}: {exc}") from None
    return uris


TOP_LEVEL_TABLES = (
    "migration",
    "daemons",
    "timeouts",
    "sources",
    "parity",
    "observation",
    "catalog",
    "reports",
    "evidence",
    "windows",
    "thresholds",
)


def parse_config(data: Mapping[str, Any], *, source: str, base_dir: Path) -> CanarygateConfig:
    """Validate parsed TOML ``data``; relative paths resolve against ``base_dir``."""
    top = _Reader(source, data)
    top.reject_unknown(TOP_LEVEL_TABLES)

    migration = top.sub("migration", required=True)
    migration.reject_unknown(("id",))
    migration_id = migration.string("id")
    if not MIGRATION_ID_RE.match(migration_id):
        raise migration.error(
            "id",
            migration_id,
            "letters, digits, '.', '_' or '-' (it names a folder under reports/)",
        )

    daemons_table = top.sub("daemons", required=True)
    daemons_table.reject_unknown(DAEMON_NAMES)
    daemons: dict[str, DaemonConfig] = {}
    for name in DAEMON_NAMES:
        if name not in daemons_table.table:
            raise ConfigError(f"{source}: missing table [daemons.{name}] with an endpoint")
        daemon = daemons_table.sub(name)
        daemon.reject_unknown(("endpoint",))
        daemons[name] = DaemonConfig(name, _endpoint(daemon, "endpoint"))

    timeouts = top.sub("timeouts")
    timeouts.reject_unknown(("connect_s", "read_s"))
    sources = top.sub("sources")
    sources.reject_unknown(("expected_healthy",))
    parity = top.sub("parity")
    parity.reject_unknown(("panes", "sessions"))
    observation = top.sub("observation")
    observation.reject_unknown(("version_interval_s",))
    catalog = top.sub("catalog")
    catalog.reject_unknown(("path",))
    reports = top.sub("reports")
    reports.reject_unknown(("dir",))

    def path_or_none(reader: _Reader, name: str) -> Path | None:
        if name not in reader.table:
            return None
        return (base_dir / reader.string(name)).resolve()

    return CanarygateConfig(
        path=None,
        migration_id=migration_id,
        daemons=daemons,
        connect_timeout_s=timeouts.positive_float("connect_s", 2.0, 60.0),
        read_timeout_s=timeouts.positive_float("read_s", 5.0, 300.0),
        expected_healthy_sources=sources.strings("expected_healthy", DEFAULT_EXPECTED_HEALTHY)
        or (),
        pane_parity=_parity(parity.sub("panes"), DEFAULT_PANE_FIELDS, DEFAULT_PANE_IGNORE),
        session_parity=_parity(
            parity.sub("sessions"), DEFAULT_SESSION_FIELDS, DEFAULT_SESSION_IGNORE
        ),
        version_interval_s=observation.positive_float("version_interval_s", 1.0, 600.0),
        catalog_path=path_or_none(catalog, "path"),
        reports_dir=path_or_none(reports, "dir"),
        evidence=_evidence(top.sub("evidence")),
        windows=_numbers(top.sub("windows"), Windows),
        thresholds=_numbers(top.sub("thresholds"), Thresholds),
        raw=data,
    )


def load_config(path: Path, *, base_dir: Path | None = None) -> CanarygateConfig:
    """Read and validate the TOML file at ``path``; relative paths in it resolve against
    ``base_dir`` (default: the file's own folder)."""
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    try:
        data = tomllib.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    config = parse_config(data, source=str(path), base_dir=base_dir or path.parent)
    return _replace(config, path=path, digest=hashlib.sha256(blob).hexdigest())


def simulator_defaults(endpoints: Mapping[str, str]) -> CanarygateConfig:
    """The config used for a simulator run when no config file exists."""
    return CanarygateConfig(
        path=None,
        migration_id="simulated",
        daemons={name: DaemonConfig(name, uri) for name, uri in endpoints.items()},
        digest=hashlib.sha256(b"built-in defaults").hexdigest(),
    )


def with_endpoints(
    config: CanarygateConfig,
    endpoints: Mapping[str, str],
    *,
    evidence: Mapping[str, str] | None = None,
) -> CanarygateConfig:
    """The same config with its daemon endpoints, and the evidence URIs given, replaced (used
    to point a run at the simulator: its evidence map replaces the config's whole, so a
    simulated run never reads a live fleet's files or endpoints)."""
    daemons = {name: DaemonConfig(name, uri) for name, uri in endpoints.items()}
    return _replace(
        config,
        daemons=daemons,
        evidence=dict(evidence) if evidence is not None else config.evidence,
    )


def _replace(config: CanarygateConfig, **changes: Any) -> CanarygateConfig:
    from dataclasses import replace

    return replace(config, **changes)
