"""Load and validate ``canarygate.toml`` into a frozen :class:`CanarygateConfig`.

Every mistake raises :class:`~pytest_canarygate.errors.ConfigError` naming the file, the key,
the bad value and what is accepted; the plugin turns it into one ``pytest.UsageError`` line.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields as dc_fields
from dataclasses import is_dataclass
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any
from typing import TypeVar

from pytest_canarygate.errors import ConfigError
from pytest_canarygate.pack import Pack
from pytest_canarygate.tomlfile import tomllib

T = TypeVar("T")

CONFIG_FILENAME = "canarygate.toml"
MIGRATION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
#: A ``[[targets]]`` name: it becomes part of test ids, xdist groups and messages.
TARGET_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
#: An ``[ssh] options`` entry, as ``ssh -o`` takes it: ``Key=value`` on one line.
SSH_OPTION_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*=[^\x00-\x1f\x7f]*$")

#: Default for ``[observation] clock_skew_s``.
DEFAULT_CLOCK_SKEW_S = 30.0

#: Upper bound for a number a pack reads with :meth:`TableReader.numbers` when its field names
#: no maximum of its own (:func:`bounded`): rejects inf and nan. Packs should bound every field
#: by what it can mean, so no value accepted here overflows date arithmetic later.
MAX_SETTING = 10**10

#: Keys of the dataclass field metadata :meth:`TableReader.numbers` reads (see :func:`bounded`).
MAXIMUM = "canarygate_maximum"
UNIT = "canarygate_unit"
FLOOR = "canarygate_floor"

#: How a runbook number is a floor: a window may only grow, a limit only shrink.
AT_LEAST, AT_MOST = "at least", "at most"


def bounded(default: float, *, maximum: float, unit: str = "", runbook: str | None = None) -> Any:
    """A field of a settings dataclass read by :meth:`TableReader.numbers`: its default, the
    largest value accepted (the smallest is always above 0) and the unit messages name::

        @dataclass(frozen=True)
        class Windows:
            monitor_h: float = bounded(24.0, maximum=8760, unit="hours", runbook=AT_LEAST)

    ``runbook`` marks the default as the runbook's own number, a floor a promotable run may
    tighten but never loosen: :data:`AT_LEAST` (a window, a minimum count) or :data:`AT_MOST`
    (a limit, an age); see :func:`loosened`.
    """
    if not 0 < default <= maximum:
        raise ValueError(f"default {default!r} is outside (0, {maximum!r}]")
    if runbook not in (None, AT_LEAST, AT_MOST):
        raise ValueError(f"runbook must be {AT_LEAST!r} or {AT_MOST!r}, not {runbook!r}")
    return field(default=default, metadata={MAXIMUM: maximum, UNIT: unit, FLOOR: runbook})


def loosened(settings: Any, prefix: str = "") -> list[str]:
    """Every runbook number (a :func:`bounded` field with ``runbook``) that ``settings``, a
    settings dataclass, sets looser than the runbook, as ``"[table] key = value (runbook: at
    least N unit)"``; nested dataclasses are walked, their field name being the table."""
    found: list[str] = []
    if not is_dataclass(settings):
        return found
    for f in dc_fields(settings):
        value = getattr(settings, f.name)
        if is_dataclass(value) and not isinstance(value, type):
            found += loosened(value, f.name)
            continue
        floor = f.metadata.get(FLOOR)
        runbook = f.default
        if floor is None or not isinstance(runbook, int | float):
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if (floor == AT_LEAST and value < runbook) or (floor == AT_MOST and value > runbook):
            unit = f" {f.metadata[UNIT]}" if f.metadata.get(UNIT) else ""
            where = f"[{prefix}] {f.name}" if prefix else f.name
            found.append(f"{where} = {value:g} (runbook: {floor} {runbook:g}{unit})")
    return found


@dataclass(frozen=True)
class DaemonConfig:
    """One daemon to observe: its name (as the pack names it) and endpoint URI."""

    name: str
    endpoint: str


@dataclass(frozen=True)
class TargetConfig:
    """One ``[[targets]]`` entry: a host group with its own daemons."""

    name: str
    daemons: Mapping[str, DaemonConfig]


@dataclass(frozen=True)
class SshConfig:
    """The ``[ssh]`` table: how ``ssh://`` endpoints are reached (passed to every ``ssh``)."""

    #: ``ssh -F``: an ssh client config file (None: the operator's own ~/.ssh/config)
    config_file: Path | None = None
    #: ``ssh -o`` values, in order (``Key=value``)
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class CanarygateConfig:
    """The validated configuration of one run: the engine's tables, and the pack's settings
    (``pack_settings``, whatever the pack's parser built from its own tables)."""

    path: Path | None
    migration_id: str
    daemons: Mapping[str, DaemonConfig]
    pack: Pack | None = None
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 5.0
    version_interval_s: float = 1.0
    #: How far past the observation's one clock a timestamp may lie before its evidence is
    #: refused as dated in the future.
    clock_skew_s: float = 30.0
    catalog_path: Path | None = None
    reports_dir: Path | None = None
    #: ``[reports] runbook_url``: where the runbook document is published; gate pages link to
    #: ``<runbook_url>#<item anchor>`` (else to the catalog's relative document path)
    runbook_url: str | None = None
    evidence: Mapping[str, str] = field(default_factory=dict)
    pack_settings: Any = None
    #: ``[chain]``: the keys whose bundles count as links, soak gaps, waivable failures
    #: (``chain.ChainSettings``; None: no table, nothing counts as a link)
    chain: Any = None
    #: ``[[signers]]``: who may sign off, waive or report (``attestation.SignerEntry``)
    signers: tuple[Any, ...] = ()
    digest: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)
    #: ``[[targets]]``: host groups, each with its own daemons (empty: ``daemons`` is the one
    #: implicit target and ``daemons`` is empty when targets are given)
    targets: tuple[TargetConfig, ...] = ()
    ssh: SshConfig = field(default_factory=SshConfig)

    def evidence_uri(self, kind: str) -> str | None:
        """Where to read ``kind`` of evidence: the ``[evidence]`` entry, else the socket of the
        daemon the pack says serves that kind, else None."""
        if kind in self.evidence:
            return self.evidence[kind]
        pack = self.pack
        daemon = self.daemons.get(pack.evidence_daemon or "") if pack else None
        if pack and daemon and kind in pack.daemon_served_kinds:
            return daemon.endpoint
        return None

    def history_since(self, now: datetime) -> datetime:
        """The oldest moment history must reach for the pack's longest window (plus an hour)."""
        if self.pack is None or self.pack.history is None:
            return now - timedelta(hours=1)
        return now - self.pack.history(self.pack_settings) - timedelta(hours=1)

    @property
    def where(self) -> str:
        """How to name this config in messages."""
        return str(self.path) if self.path else "built-in defaults"


class TableReader:
    """Typed access to one TOML table that reports mistakes with file and key; packs use it
    to read their own tables."""

    def __init__(self, source: str, table: Mapping[str, Any], prefix: str = "") -> None:
        self.source = source
        self.table = table
        self.prefix = prefix

    def key(self, name: str) -> str:
        """The dotted name of ``name`` in this table."""
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str, value: object, expected: str) -> ConfigError:
        """A ConfigError naming the file, the key, the value and what is accepted."""
        return ConfigError(f"{self.source}: {self.key(name)} = {value!r}: expected {expected}")

    def reject_unknown(self, allowed: Iterable[str]) -> None:
        """Refuse any key not in ``allowed``."""
        allowed = tuple(allowed)
        for name in self.table:
            if name not in allowed:
                accepted = ", ".join(allowed) or "nothing"
                raise ConfigError(
                    f"{self.source}: unknown key {self.key(name)!r}; accepted here: {accepted}"
                )

    def sub(self, name: str, *, required: bool = False) -> TableReader:
        """The sub-table ``name`` (empty when absent and not required)."""
        value = self.table.get(name)
        if value is None:
            if required:
                raise ConfigError(f"{self.source}: missing table [{self.key(name)}]")
            value = {}
        if not isinstance(value, Mapping):
            raise self.error(name, value, "a table")
        return TableReader(self.source, value, self.key(name))

    def string(self, name: str, default: str | None = None) -> str:
        """A non-empty string."""
        value = self.table.get(name, default)
        if value is None:
            raise ConfigError(f"{self.source}: missing key {self.key(name)!r}")
        if not isinstance(value, str) or not value.strip():
            raise self.error(name, value, "a non-empty string")
        return value

    def positive_float(self, name: str, default: float, maximum: float) -> float:
        """A number of seconds in ``(0, maximum]``."""
        value = self.table.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(name, value, f"a number of seconds, > 0 and <= {maximum:g}")
        if not 0 < value <= maximum:
            raise self.error(name, value, f"a number of seconds, > 0 and <= {maximum:g}")
        return float(value)

    def strings(
        self,
        name: str,
        default: tuple[str, ...] | None,
        *,
        star: str | None = "all",
        empty: bool = True,
    ) -> tuple[str, ...] | None:
        """A list of non-empty strings, or ``"*"`` (returned as None) when ``star`` says what it
        means; an empty list only when ``empty``."""
        value = self.table.get(name)
        if value is None:
            return default
        if star is not None and value == "*":
            return None
        ok = isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)
        if not ok or (not empty and not value):
            expected = "a list of non-empty strings" if empty else "a non-empty list of strings"
            if star is not None:
                expected += f' (or "*" for {star})'
            raise self.error(name, value, expected)
        return tuple(value)

    def numbers(self, cls: type[T]) -> T:
        """Every field of the dataclass ``cls`` read from this table as a number above 0 and at
        most the field's maximum (:func:`bounded`; :data:`MAX_SETTING` for a field without
        one), int fields as integers; defaults for the fields not given."""
        names = tuple(f.name for f in dc_fields(cls))  # type: ignore[arg-type]
        self.reject_unknown(names)
        values: dict[str, Any] = {}
        for f in dc_fields(cls):  # type: ignore[arg-type]
            if f.name not in self.table:
                continue
            value = self.table[f.name]
            maximum = f.metadata.get(MAXIMUM, MAX_SETTING)
            unit = f.metadata.get(UNIT, "")
            is_int = f.type in ("int", int)
            ok_type = isinstance(value, int) if is_int else isinstance(value, int | float)
            if isinstance(value, bool) or not ok_type or not 0 < value <= maximum:
                kind = "an integer" if is_int else "a number"
                of = f" of {unit}" if unit else ""
                raise self.error(f.name, value, f"{kind}{of}, > 0 and <= {maximum:g}")
            values[f.name] = value
        return cls(**values)


def _endpoint(reader: TableReader, name: str, example: str, *, ssh: bool = False) -> str:
    from pytest_canarygate.endpoints import parse_endpoint

    raw = reader.string(name)
    try:
        endpoint = parse_endpoint(raw, strict=True)
    except ConfigError as exc:
        raise ConfigError(f"{reader.source}: {reader.key(name)}: {exc}") from None
    if endpoint.scheme == "ssh" and not ssh:
        raise reader.error(
            name, raw, f"{example} (ssh:// endpoints belong to a [[targets]] entry's daemons)"
        )
    if endpoint.scheme not in ("unix", "ssh"):
        forms = f"{example} or ssh://[user@]host[:port]/absolute/path" if ssh else example
        raise reader.error(name, raw, f"{forms} (daemons speak JSON-RPC over their Unix socket)")
    return endpoint.uri


def _daemons(table: TableReader, pack: Pack, *, ssh: bool) -> dict[str, DaemonConfig]:
    """A ``[daemons]`` table (or a target's): one endpoint per daemon the pack names."""
    table.reject_unknown(pack.daemons)
    daemons: dict[str, DaemonConfig] = {}
    for name in pack.daemons:
        if name not in table.table:
            raise ConfigError(f"{table.source}: missing table [{table.key(name)}] with an endpoint")
        daemon = table.sub(name)
        daemon.reject_unknown(("endpoint",))
        daemons[name] = DaemonConfig(
            name, _endpoint(daemon, "endpoint", pack.endpoint_example, ssh=ssh)
        )
    return daemons


def _targets(data: Mapping[str, Any], source: str, pack: Pack) -> tuple[TargetConfig, ...]:
    """``[[targets]]``: a non-empty array of tables, each a unique safe ``name`` and daemons."""
    value = data["targets"]
    if not isinstance(value, list) or not value or not all(isinstance(t, Mapping) for t in value):
        raise ConfigError(
            f"{source}: targets = {value!r}: expected a non-empty array of [[targets]] tables"
        )
    targets: list[TargetConfig] = []
    for index, raw in enumerate(value):
        reader = TableReader(source, raw, f"targets[{index}]")
        reader.reject_unknown(("name", "daemons"))
        name = reader.string("name")
        if not TARGET_NAME_RE.match(name):
            raise reader.error(
                "name", name, "lower-case letters, digits and '-', at most 64 (it names tests)"
            )
        if any(t.name == name for t in targets):
            raise reader.error("name", name, "a name no other [[targets]] entry has")
        daemons = _daemons(reader.sub("daemons", required=True), pack, ssh=True)
        targets.append(TargetConfig(name, daemons))
    return tuple(targets)


def _ssh(reader: TableReader, base_dir: Path) -> SshConfig:
    reader.reject_unknown(("config_file", "options"))
    options = reader.strings("options", (), star=None) or ()
    for option in options:
        if not SSH_OPTION_RE.match(option):
            raise reader.error(
                "options", option, "ssh -o values written Key=value on one line (e.g. Port=22)"
            )
    config_file = _path(reader, "config_file", base_dir)
    if config_file is not None and not config_file.is_file():
        raise reader.error(
            "config_file", reader.table["config_file"], f"an ssh client config file ({config_file})"
        )
    return SshConfig(config_file=config_file, options=options)


def _evidence(reader: TableReader, pack: Pack) -> dict[str, str]:
    """The ``[evidence]`` table: a URI per kind, of a scheme the pack reads that kind from
    (any scheme the engine parses for a kind the pack's ``evidence_schemes`` does not list)."""
    from pytest_canarygate.endpoints import parse_endpoint

    reader.reject_unknown(dict.fromkeys(a.kind for a in pack.accessors.values()))
    uris = {}
    for kind in reader.table:
        raw = reader.string(kind)
        try:
            endpoint = parse_endpoint(raw, strict=True)
        except ConfigError as exc:
            raise ConfigError(f"{reader.source}: {reader.key(kind)}: {exc}") from None
        schemes = pack.evidence_schemes.get(kind)
        if schemes is not None and endpoint.scheme not in schemes:
            forms = " or ".join(f"{s}://" for s in schemes)
            raise reader.error(
                kind,
                raw,
                f"a {forms} URI (the {pack.name} pack reads {kind} evidence from no other scheme)"
                if schemes
                else f"no URI (the {pack.name} pack reads {kind} evidence from no scheme)",
            )
        uris[kind] = endpoint.uri
    return uris


def _path(reader: TableReader, name: str, base_dir: Path) -> Path | None:
    """The path at key ``name``, resolved against ``base_dir``; None when absent."""
    if name not in reader.table:
        return None
    raw = reader.string(name)
    if "\x00" in raw:
        raise reader.error(name, raw, "a path without NUL bytes")
    try:
        return (base_dir / raw).resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        # RuntimeError: a symlink loop (before Python 3.13)
        raise reader.error(name, raw, f"a path that resolves ({exc})") from None


ENGINE_TABLES = (
    "migration",
    "daemons",
    "timeouts",
    "observation",
    "catalog",
    "reports",
    "evidence",
    "chain",
    "signers",
    "targets",
    "ssh",
)


def pack_name_of(data: Mapping[str, Any]) -> str | None:
    """The pack a parsed config names (``[migration] pack``), if it names one."""
    migration = data.get("migration")
    name = migration.get("pack") if isinstance(migration, Mapping) else None
    return name if isinstance(name, str) else None


def parse_config(
    data: Mapping[str, Any], *, source: str, base_dir: Path, pack: Pack
) -> CanarygateConfig:
    """Validate parsed TOML ``data`` for ``pack``; relative paths resolve against ``base_dir``."""
    # Imported here: both read their tables with TableReader from this module.
    from pytest_canarygate.attestation import parse_signers
    from pytest_canarygate.chain import parse_chain_table

    top = TableReader(source, data)
    top.reject_unknown((*ENGINE_TABLES, *pack.settings_tables))

    migration = top.sub("migration", required=True)
    migration.reject_unknown(("id", "pack"))
    migration_id = migration.string("id")
    if not MIGRATION_ID_RE.match(migration_id):
        raise migration.error(
            "id",
            migration_id,
            "letters, digits, '.', '_' or '-' (it names a folder under reports/)",
        )
    if migration.string("pack", pack.name) != pack.name:
        raise migration.error("pack", migration.table["pack"], f"{pack.name!r}")

    targets: tuple[TargetConfig, ...] = ()
    daemons: dict[str, DaemonConfig] = {}
    if "targets" in data:
        if "daemons" in data:
            raise ConfigError(
                f"{source}: both [daemons] and [[targets]] are given; keep one: [daemons] for "
                "one host, or each host's daemons under its [[targets]] entry "
                "([targets.daemons.<name>])"
            )
        targets = _targets(data, source, pack)
    else:
        daemons = _daemons(top.sub("daemons", required=True), pack, ssh=False)

    timeouts = top.sub("timeouts")
    timeouts.reject_unknown(("connect_s", "read_s"))
    observation = top.sub("observation")
    observation.reject_unknown(("version_interval_s", "clock_skew_s"))
    catalog = top.sub("catalog")
    catalog.reject_unknown(("path",))
    reports = top.sub("reports")
    reports.reject_unknown(("dir", "runbook_url"))

    return CanarygateConfig(
        path=None,
        migration_id=migration_id,
        daemons=daemons,
        pack=pack,
        connect_timeout_s=timeouts.positive_float("connect_s", 2.0, 60.0),
        read_timeout_s=timeouts.positive_float("read_s", 5.0, 300.0),
        version_interval_s=observation.positive_float("version_interval_s", 1.0, 600.0),
        clock_skew_s=observation.positive_float("clock_skew_s", DEFAULT_CLOCK_SKEW_S, 3600.0),
        catalog_path=_path(catalog, "path", base_dir),
        reports_dir=_path(reports, "dir", base_dir),
        runbook_url=_runbook_url(reports),
        evidence=_evidence(top.sub("evidence"), pack),
        pack_settings=pack.parse_settings(top) if pack.parse_settings else None,
        chain=parse_chain_table(data.get("chain"), base_dir, source),
        signers=parse_signers(data.get("signers", []), base_dir, source),
        raw=data,
        targets=targets,
        ssh=_ssh(top.sub("ssh"), base_dir),
    )


def _runbook_url(reports: TableReader) -> str | None:
    if reports.table.get("runbook_url") is None:
        return None
    url = reports.string("runbook_url")
    if (
        not url.startswith(("https://", "http://"))
        or "#" in url
        or any(c.isspace() or ord(c) < 0x20 for c in url)
    ):
        raise reports.error(
            "runbook_url",
            url,
            "an http(s) URL of the runbook document, without a #fragment (each gate page adds "
            "its item's anchor)",
        )
    return url


def read_toml(path: Path) -> tuple[bytes, dict[str, Any]]:
    """The bytes of the TOML file at ``path`` and its parsed contents.

    Only a regular file (a symbolic link to one is fine) of at most 16 MiB is read: a FIFO or a
    device is refused before it is opened, so a config named by mistake never hangs the run.
    """
    from pytest_canarygate.trust import FileRefused
    from pytest_canarygate.trust import read_regular_file

    try:
        blob = read_regular_file(path, max_bytes=16 * 1024 * 1024)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except FileRefused as exc:
        raise ConfigError(f"config file {exc}; give a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    try:
        return blob, tomllib.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_config(path: Path, pack: Pack, *, base_dir: Path | None = None) -> CanarygateConfig:
    """Read and validate the TOML file at ``path`` for ``pack``; relative paths in it resolve
    against ``base_dir`` (default: the file's own folder)."""
    blob, data = read_toml(path)
    config = parse_config(data, source=str(path), base_dir=base_dir or path.parent, pack=pack)
    return _replace(config, path=path, digest=hashlib.sha256(blob).hexdigest())


def simulator_defaults(pack: Pack, endpoints: Mapping[str, str]) -> CanarygateConfig:
    """The config used for a simulator run when no config file exists."""
    return CanarygateConfig(
        path=None,
        migration_id="simulated",
        daemons={name: DaemonConfig(name, uri) for name, uri in endpoints.items()},
        pack=pack,
        pack_settings=(
            pack.parse_settings(TableReader("built-in defaults", {}))
            if pack.parse_settings
            else None
        ),
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
        targets=(),
        evidence=dict(evidence) if evidence is not None else config.evidence,
    )


def _replace(config: CanarygateConfig, **changes: Any) -> CanarygateConfig:
    from dataclasses import replace

    return replace(config, **changes)
