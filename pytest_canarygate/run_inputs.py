"""What a run starts from: the config file, the catalog(s), the run folder and the signing key.

Each resolver turns a mistake into one ``pytest.UsageError`` line naming the file or option.
"""

from __future__ import annotations

import os
from datetime import datetime
from datetime import timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from pytest_canarygate.catalog import Catalog
from pytest_canarygate.catalog import load_catalogs
from pytest_canarygate.config import CONFIG_FILENAME
from pytest_canarygate.config import CanarygateConfig
from pytest_canarygate.config import load_config
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.observation import ACCESSORS
from pytest_canarygate.observation import EVIDENCE_NEED

#: Options whose value is a path; pytest reads an existing path given after a space as a test
#: path when it chooses its rootdir, before plugin options are known.
PATH_OPTIONS = ("--canarygate-key", "--canarygate-config", "--canarygate-reports", "--sim")


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


def load_settings(config: pytest.Config) -> CanarygateConfig | None:
    """The config file: ``--canarygate-config``, ``CANARYGATE_CONFIG``, or canarygate.toml at
    the rootdir; None only for a simulator run without one."""
    option = config.getoption("canarygate_config") or os.environ.get("CANARYGATE_CONFIG")
    if option:
        path = Path(option)
        if not path.is_absolute():
            path = config.invocation_params.dir / path
        return load_config(path)
    default = config.rootpath / CONFIG_FILENAME
    if default.is_file():
        return load_config(default)
    if config.getoption("canarygate_sim"):
        return None
    raise ConfigError(
        f"no {CONFIG_FILENAME} in {config.rootpath}; pass --canarygate-config PATH "
        "(or --sim SCENARIO to run against the bundled simulator)"
    )


def load_catalog(config: pytest.Config, settings: CanarygateConfig | None) -> Catalog:
    """The gate catalog, merged with the extra catalogs plugins name, checked against the
    daemons the config defines and the evidence the engine can read."""
    path = settings.catalog_path if settings and settings.catalog_path else None
    extra = [
        Path(p)
        for paths in config.hook.pytest_canarygate_catalog_paths(config=config)
        for p in paths
    ]
    catalog = load_catalogs([path or config.rootpath / "gates" / "catalog.toml", *extra])
    configured = set(settings.daemons) if settings else {"v4", "v5"}
    for gate in catalog.gates.values():
        accessors = {n.method for n in gate.needs if n.daemon == EVIDENCE_NEED}
        strange = sorted(accessors - set(ACCESSORS))
        if strange:
            raise ConfigError(
                f"{catalog.path}: gate {gate.id} needs unknown evidence {', '.join(strange)};"
                f" known: {', '.join(ACCESSORS)}"
            )
        unknown = {n.daemon for n in gate.needs if n.daemon != EVIDENCE_NEED} - configured
        if unknown:
            raise ConfigError(
                f"{catalog.path}: gate {gate.id} needs daemon(s) {', '.join(sorted(unknown))}"
                f" that the config does not define (defined: {', '.join(sorted(configured))})"
            )
    return catalog


def new_run_dir(config: pytest.Config, settings: CanarygateConfig | None, phase: str) -> Path:
    """Create ``<reports>/<migration>/<phase>/<UTC time>-running``."""
    migration = settings.migration_id if settings else "simulated"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    stamp = stamp[:-4] + "Z"  # milliseconds are enough
    run_dir = _reports_root(config, settings) / migration / phase / f"{stamp}-running"
    try:
        run_dir.mkdir(parents=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the run folder {run_dir}: {exc.strerror}") from None
    return run_dir


def _reports_root(config: pytest.Config, settings: CanarygateConfig | None) -> Path:
    option = config.getoption("canarygate_reports")
    if option:
        return (config.invocation_params.dir / str(option)).resolve()
    if settings and settings.reports_dir:
        return settings.reports_dir
    return config.rootpath / "reports"


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
