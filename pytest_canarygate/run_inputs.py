"""What a run starts from: the pack, the config file, the catalog(s), the run folder and the
signing key.

Each resolver turns a mistake into one ``pytest.UsageError`` line naming the file or option.
"""

from __future__ import annotations

import os
from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from pytest_canarygate import clock
from pytest_canarygate.catalog import Catalog
from pytest_canarygate.catalog import load_catalogs
from pytest_canarygate.config import CONFIG_FILENAME
from pytest_canarygate.config import CanarygateConfig
from pytest_canarygate.config import load_config
from pytest_canarygate.config import pack_name_of
from pytest_canarygate.config import read_toml
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.observation import EVIDENCE_NEED
from pytest_canarygate.pack import Pack

#: Options whose value is a path; pytest reads an existing path given after a space as a test
#: path when it chooses its rootdir, before plugin options are known.
PATH_OPTIONS = (
    "--canarygate-key",
    "--canarygate-config",
    "--canarygate-reports",
    "--canarygate-sim",
)


def check_option_spelling(config: pytest.Config) -> None:
    """Refuse ``--canarygate-key PATH`` (space) for a PATH outside the invocation directory:
    pytest has already used it to choose the rootdir, wrongly."""
    for flag, value in pairwise(config.invocation_params.args):
        if flag not in PATH_OPTIONS:
            continue
        here = config.invocation_params.dir.resolve()
        path = (here / value).resolve()
        if path.exists() and not path.is_relative_to(here):
            raise ConfigError(
                f"write {flag}={value} (with '='): given after a space, pytest takes {value} for "
                "a test path when it chooses its rootdir, and would judge the wrong folder "
                f"(here it chose {config.rootpath})"
            )


def installed_packs(config: pytest.Config) -> dict[str, Pack]:
    """Every pack the ``pytest_canarygate_packs`` hook returns, by name."""
    packs: dict[str, Pack] = {}
    others = _other_providers(config)
    for answer in config.hook.pytest_canarygate_packs(config=config):
        for pack in answer:
            if not isinstance(pack, Pack):
                raise ConfigError(f"pytest_canarygate_packs returned {pack!r}, not a Pack")
            if pack.name in packs:
                raise ConfigError(f"two installed runbook packs are both named {pack.name!r}")
            if others and pack.evidence_schemes:
                # A team's own provider may claim a URI of any scheme for any kind; which,
                # only the hook knows, at run time: the pack's table cannot refuse at load.
                pack = replace(pack, evidence_schemes={})
            packs[pack.name] = pack
    return packs


def _other_providers(config: pytest.Config) -> bool:
    """True when a conftest or plugin that provides no pack implements
    ``pytest_canarygate_make_provider``."""
    hook = config.hook
    pack_plugins = {id(impl.plugin) for impl in hook.pytest_canarygate_packs.get_hookimpls()}
    return any(
        id(impl.plugin) not in pack_plugins
        for impl in hook.pytest_canarygate_make_provider.get_hookimpls()
    )


def choose_pack(packs: dict[str, Pack], name: str | None, where: str) -> Pack:
    """The pack ``name`` (from ``[migration] pack`` in ``where``), or the only one installed."""
    known = ", ".join(sorted(packs)) or "none"
    if name is not None:
        if name not in packs:
            raise ConfigError(f"{where}: [migration] pack = {name!r} is not installed ({known})")
        return packs[name]
    if len(packs) == 1:
        return next(iter(packs.values()))
    if not packs:
        raise ConfigError(
            "no runbook pack is installed: a pack plugin must implement pytest_canarygate_packs"
        )
    raise ConfigError(
        f"{where}: several runbook packs are installed ({known}); name one "
        'with [migration] pack = "<name>"'
    )


def config_path(config: pytest.Config) -> Path | None:
    """The config file: ``--canarygate-config``, ``CANARYGATE_CONFIG``, or canarygate.toml at
    the rootdir; None when there is none (only a simulator run may go without)."""
    option = config.getoption("canarygate_config") or os.environ.get("CANARYGATE_CONFIG")
    if option:
        path = Path(option)
        return path if path.is_absolute() else config.invocation_params.dir / path
    ini: list[Path] = config.getini("canarygate_config")
    if ini:
        return ini[0]
    default = config.rootpath / CONFIG_FILENAME
    return default if default.is_file() else None


def load_settings(config: pytest.Config) -> tuple[Pack, CanarygateConfig | None]:
    """The run's pack and its validated config (None only for a simulator run without one)."""
    packs = installed_packs(config)
    path = config_path(config)
    if path is None:
        if config.getoption("canarygate_sim"):
            return choose_pack(packs, None, "the simulator run"), None
        raise ConfigError(
            f"no {CONFIG_FILENAME} in {config.rootpath}; pass --canarygate-config=PATH "
            "(or --canarygate-sim=SCENARIO to run against the bundled simulator)"
        )
    _, data = read_toml(path)
    pack = choose_pack(packs, pack_name_of(data), str(path))
    return pack, load_config(path, pack)


def check_scenario(config: pytest.Config, pack: Pack) -> None:
    """Refuse a ``--canarygate-sim`` scenario the pack's simulator does not know."""
    scenario = config.getoption("canarygate_sim")
    if not scenario:
        return
    if pack.simulator is None:
        raise ConfigError(f"--canarygate-sim: the {pack.name} pack has no simulator")
    if pack.check_scenario is not None:
        try:
            pack.check_scenario(scenario)
        except ConfigError as exc:
            raise ConfigError(f"--canarygate-sim={scenario}: {exc}") from None


def load_catalog(config: pytest.Config, pack: Pack, settings: CanarygateConfig | None) -> Catalog:
    """The gate catalog (``[catalog] path``, else gates/catalog.toml at the rootdir, else the
    pack's own), merged with the extra catalogs plugins name, checked against the pack's
    daemons, evidence and parameters."""
    path = settings.catalog_path if settings and settings.catalog_path else None
    if path is None:
        # A repository's own gates/catalog.toml wins over the one the pack ships.
        local = config.rootpath / "gates" / "catalog.toml"
        path = local if local.is_file() else pack.catalog
    elif settings is not None:
        _check_configured_catalog(settings, path)
    extra = [
        Path(p)
        for paths in config.hook.pytest_canarygate_catalog_paths(config=config)
        for p in paths
    ]
    catalog = load_catalogs([path, *extra])
    # every [[targets]] entry defines each daemon the pack names
    configured = set(settings.daemons) if settings and not settings.targets else set(pack.daemons)
    for gate in catalog.gates.values():
        accessors = {n.method for n in gate.needs if n.daemon == EVIDENCE_NEED}
        strange = sorted(accessors - set(pack.accessors))
        if strange:
            raise ConfigError(
                f"{catalog.path}: gate {gate.id} needs unknown evidence {', '.join(strange)};"
                f" known: {', '.join(pack.accessors) or 'none'}"
            )
        if gate.per is not None and pack.parameter(gate.per) is None:
            known = ", ".join(p.fixture for p in pack.parameters) or "none"
            raise ConfigError(
                f"{catalog.path}: gate {gate.id}: per = {gate.per!r} is not a fixture the "
                f"{pack.name} pack parametrizes ({known})"
            )
        unknown = {n.daemon for n in gate.needs if n.daemon != EVIDENCE_NEED} - configured
        if unknown:
            raise ConfigError(
                f"{catalog.path}: gate {gate.id} needs daemon(s) {', '.join(sorted(unknown))}"
                f" that the config does not define (defined: {', '.join(sorted(configured))})"
            )
    return catalog


def _check_configured_catalog(settings: CanarygateConfig, path: Path) -> None:
    """Refuse a ``[catalog] path`` that names no readable file, naming the key."""
    raw = settings.raw.get("catalog", {}).get("path", str(path))
    where = f"{settings.where}: catalog.path = {raw!r}"
    try:
        if not path.is_file():  # checked first: opening a FIFO would block
            what = "does not exist" if not path.exists() else "is not a file"
            raise ConfigError(
                f"{where}: the gate catalog {path} {what} (relative paths resolve against the "
                "config file's folder)"
            )
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{where}: the gate catalog {path} cannot be read: {exc.strerror}"
        ) from None


def new_run_dir(config: pytest.Config, settings: CanarygateConfig | None, phase: str) -> Path:
    """Create ``<reports>/<migration>/<phase>/<UTC time>-running``."""
    migration = settings.migration_id if settings else "simulated"
    stamp = clock.wall_now().strftime("%Y%m%dT%H%M%S.%fZ")
    stamp = stamp[:-4] + "Z"  # milliseconds are enough
    root, origin = _reports_root(config, settings)
    run_dir = root / migration / phase / f"{stamp}-running"
    try:
        run_dir.mkdir(parents=True)
    except OSError as exc:
        raise ConfigError(
            f"{origin}: cannot create the run folder {run_dir}: {exc.strerror}"
        ) from None
    return run_dir


def _reports_root(config: pytest.Config, settings: CanarygateConfig | None) -> tuple[Path, str]:
    """``--canarygate-reports``, else ``[reports] dir``, else ini ``canarygate_reports``, else
    reports/ at the rootdir; and how to name where it came from in a message."""
    option = config.getoption("canarygate_reports")
    if option:
        return (config.invocation_params.dir / str(option)).resolve(), (
            f"--canarygate-reports={option}"
        )
    if settings and settings.reports_dir:
        raw = settings.raw.get("reports", {}).get("dir", str(settings.reports_dir))
        return settings.reports_dir, f"{settings.where}: reports.dir = {raw!r}"
    ini: list[Path] = config.getini("canarygate_reports")
    if ini:
        return ini[0], f"{config.inipath or 'the ini file'}: canarygate_reports = {ini[0]}"
    return config.rootpath / "reports", f"the default reports folder {config.rootpath / 'reports'}"


def resolve_signer(config: pytest.Config) -> tuple[Any, bool]:
    """The signer for this run's bundle, and whether it is a throwaway one."""
    from pytest_canarygate.keys import ephemeral_signer
    from pytest_canarygate.keys import load_signer
    from pytest_canarygate.keys import resolve_signing_key_path

    path = resolve_signing_key_path(config.getoption("canarygate_key"), os.environ)
    if path is not None:
        if not path.is_absolute():
            path = config.invocation_params.dir / path
        try:
            return load_signer(path), False
        except ConfigError as exc:
            raise ConfigError(f"--canarygate-key: {exc}") from None
    if config.getoption("canarygate_sim"):
        return ephemeral_signer(), True
    return None, False
