"""Whether a run judged its whole phase or only part of it."""

from __future__ import annotations

from pathlib import Path

import pytest


def narrowing_options(config: pytest.Config, stage: str | None, gates_dir: Path) -> list[str]:
    """The options that narrowed the run to part of its phase (empty: the whole phase);
    ``gates_dir`` is the folder of the pack's gate modules, the one path a whole run names."""
    reasons = []
    if config.option.keyword:
        reasons.append(f"-k {config.option.keyword!r}")
    if config.option.markexpr:
        reasons.append(f"-m {config.option.markexpr!r}")
    if config.getoption("deselect", None):
        reasons.append("--deselect")
    if stage:
        reasons.append(f"--canarygate-stage={stage}")
    if config.getoption("lf", False) or config.getoption("last_failed_no_failures", "all") != "all":
        reasons.append("--lf")
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        gates_dir = gates_dir.resolve()
        for arg in config.args:
            path = Path(arg.split("::")[0])
            resolved = (config.invocation_params.dir / path).resolve()
            if resolved != gates_dir or "::" in arg:
                reasons.append(f"explicit selection {arg}")
    return reasons
