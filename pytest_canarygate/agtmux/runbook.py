"""The agtmux runbook's shape: its phases, and where its catalog and gates live."""

from __future__ import annotations

from pathlib import Path

#: The runbook's phases, in order; the catalog's ``[runbook] phases`` says the same (tested).
PHASES = ("alpha", "canary", "gradual", "cutover", "rollback")

#: The gate modules and their catalog: the repository's top-level ``gates/`` folder, shipped in
#: the wheel as ``pytest_canarygate/agtmux/gates``.
GATES_DIR = Path(__file__).resolve().parent / "gates"
if not GATES_DIR.is_dir():  # running from a source checkout: gates/ sits at the top level
    GATES_DIR = Path(__file__).resolve().parents[2] / "gates"
CATALOG = GATES_DIR / "catalog.toml"
