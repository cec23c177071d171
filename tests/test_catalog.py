"""The gate catalog: every runbook item traceable to gates, and the other way round."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from pytest_canarygate.agtmux.pack import title_values
from pytest_canarygate.agtmux.runbook import PHASES
from pytest_canarygate.agtmux.settings import AgtmuxSettings
from pytest_canarygate.agtmux.settings import Windows
from pytest_canarygate.catalog import load_catalog
from pytest_canarygate.catalog import needs_of
from pytest_canarygate.catalog import render_title
from pytest_canarygate.cli import main
from pytest_canarygate.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "gates" / "catalog.toml"
RUNBOOK = ROOT / "docs" / "runbook" / "migration-canary-rollback.md"


def gate_ids_in_code() -> dict[str, str]:
    """gate id -> test function name, read from the @gate(...) decorators in gates/."""
    found: dict[str, str] = {}
    for module in sorted((ROOT / "gates").glob("test_*.py")):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                for deco in node.decorator_list:
                    if isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "gate":
                        for arg in deco.args:
                            assert isinstance(arg, ast.Constant), ast.unparse(deco)
                            gate_id = arg.value
                            assert gate_id not in found, f"gate {gate_id} implemented twice"
                            found[gate_id] = node.name
    return found


def test_every_catalog_gate_is_implemented_once_and_every_gate_is_catalogued() -> None:
    catalog = load_catalog(CATALOG)
    in_code = gate_ids_in_code()
    assert set(catalog.gates) == set(in_code)


def test_every_item_quotes_the_runbook() -> None:
    catalog = load_catalog(CATALOG)
    runbook = RUNBOOK.read_text()
    for item in catalog.items.values():
        assert f"## {item.section}" in runbook, (
            f"{item.id}: section {item.section!r} not in runbook"
        )


def test_anchor_follows_markdown_slug_rules() -> None:
    item = load_catalog(CATALOG).items["P1-S1"]
    assert item.anchor == "phase-1-internal-alpha-v4--v5-parallel"


def test_needs_merge_keeps_the_most_readings() -> None:
    catalog = load_catalog(CATALOG)
    plan = needs_of(catalog.gates_for("alpha"))
    assert plan["v5"]["summary_changed"] == 2
    assert plan["v5"]["state_changed"] == 2  # once for the version gate, twice for parity
    assert plan["v4"]["latency_status"] == 1
    assert "summary_changed" not in plan["v4"]


def test_each_phase_has_items() -> None:
    catalog = load_catalog(CATALOG)
    assert {i.phase for i in catalog.items.values()} == set(PHASES)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('[[gate]]\nid = "g"\nitem = "NOPE"\ntitle = "t"\n', "item 'NOPE' is not a runbook item"),
        ('[[gate]]\nid = "g"\nitem = "A"\ntitle = "t"\nneeds = ["v5"]\n', "need 'v5' is not"),
        ('[[gate]]\nid = "g"\nitem = "A"\ntitle = "t"\nphases = ["beta"]\n', "phases = ['beta']"),
        ('[[gate]]\nid = "g"\nitem = "A"\ntitle = "t"\nper = "a pane"\n', "per = 'a pane'"),
        ("", "A have no gate and no pending reason"),
        (
            '[[gate]]\nid = "g"\nitem = "A"\ntitle = "t"\nneeds = ["v5:source.ingest"]\n',
            "gates only observe, and source.ingest is not a read-only method",
        ),
    ],
)
def test_catalog_mistakes_are_named(tmp_path: Path, extra: str, expected: str) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(
        RUNBOOK_TABLE
        + '[[item]]\nid = "A"\nsection = "S"\ntext = "t"\nkind = "step"\nphase = "alpha"\n'
        'stage = "entry"\n' + extra
    )
    with pytest.raises(ConfigError) as info:
        load_catalog(path)
    assert expected in str(info.value)


RUNBOOK_TABLE = (
    '[runbook]\ntitle = "t"\nphases = ["alpha", "beta2"]\n'
    'read_only_methods = ["list_*", "daemon.info"]\n'
)


@pytest.mark.parametrize(
    ("runbook", "expected"),
    [
        ("", "missing table [runbook]"),
        ('[runbook]\ntitle = "t"\n', "[runbook] phases must be a non-empty list"),
        ("[runbook]\nphases = []\n", "[runbook] phases must be a non-empty list"),
        ('[runbook]\nphases = ["alpha", "alpha"]\n', "[runbook] phases lists a value twice"),
        ('[runbook]\nphases = ["al pha"]\n', "may hold only letters"),
        ('[runbook]\nphases = ["alpha"]\nstages = ["x"]\n', "unknown key(s) stages"),
        ('[runbook]\nphases = ["a", "b"]\nrequires = "a"\n', "requires must map a phase"),
        ('[runbook]\nphases = ["a", "b"]\nrequires = { b = 1 }\n', "requires must map a phase"),
        (
            '[runbook]\nphases = ["a", "b"]\nrequires = { b = "c" }\n',
            "requires.b = 'c': 'c' is not one of the phases (a, b)",
        ),
        (
            '[runbook]\nphases = ["a", "b"]\nrequires = { a = "b" }\n',
            "requires.a = 'b': a phase can only require an earlier one",
        ),
        (
            '[runbook]\nphases = ["a", "b"]\nrequires = { a = "a" }\n',
            "a phase can only require an earlier one",
        ),
    ],
)
def test_runbook_table_mistakes_are_named(tmp_path: Path, runbook: str, expected: str) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(runbook + '[[item]]\nid = "A"\nsection = "S"\ntext = "t"\n')
    with pytest.raises(ConfigError) as info:
        load_catalog(path)
    assert expected in str(info.value)


def test_phases_come_from_the_catalog(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(
        RUNBOOK_TABLE
        + '[[item]]\nid = "A"\nsection = "S"\ntext = "t"\nkind = "step"\nphase = "beta2"\n'
        'stage = "entry"\npending = "later"\n'
    )
    catalog = load_catalog(path)
    assert catalog.phases == ("alpha", "beta2")
    assert catalog.items["A"].phase == "beta2"


def test_the_agtmux_catalog_declares_the_packs_phases() -> None:
    assert load_catalog(CATALOG).phases == PHASES


def test_each_agtmux_phase_after_alpha_requires_the_one_before() -> None:
    assert load_catalog(CATALOG).requires == {
        "canary": "alpha",
        "gradual": "canary",
        "cutover": "gradual",
    }


def test_catalog_command_lists_items_against_gates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog", "--catalog", str(CATALOG), "--phase", "alpha"]) == 0
    out = capsys.readouterr().out
    assert "P1-X1" in out
    assert "-> alpha.exit.projection-matches (per agtmux_tmux_session)" in out
    assert main(["catalog", "--catalog", str(CATALOG), "--phase", "canary"]) == 0
    out = capsys.readouterr().out
    assert "P2-X3" in out
    assert "-> canary.exit.users-confirm" in out
    assert "-> canary.pre.rollback-rehearsed" in out  # P2-C4
    assert "PENDING" not in out


def test_catalog_command_json_is_two_way(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog", "--catalog", str(CATALOG), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    items = {i["id"]: i for i in data["items"]}
    for gate in data["gates"]:
        assert gate["id"] in items[gate["item"]]["gates"]


def test_catalog_command_reports_a_bad_catalog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "catalog.toml"
    bad.write_text("[[item]]\nid = 1\n")
    assert main(["catalog", "--catalog", str(bad)]) == 3
    assert str(bad) in capsys.readouterr().err


def test_signal_items_carry_the_runbook_action() -> None:
    from pytest_canarygate.catalog import catalog_as_json

    catalog = load_catalog(CATALOG)
    assert catalog.decision_phase == "rollback"
    runbook = RUNBOOK.read_text()
    for item in catalog.items.values():
        if item.kind == "signal":
            assert item.action, f"{item.id}: a signal without its action"
            assert f"| {item.action.capitalize()} |" in runbook, f"{item.id}: {item.action!r}"
        else:
            assert item.action is None
    assert catalog.items["SIG-4"].action == "investigate, consider rollback"
    data = json.loads(json.dumps(catalog_as_json(catalog)))
    assert data["decision_phase"] == "rollback"
    assert {i["id"]: i["action"] for i in data["items"]}["SIG-1"] == "rollback immediately"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('kind = "signal"\n', "item #1: item A: a signal needs key 'action'"),
        ('kind = "signal"\naction = " "\n', "item #1: item A: a signal needs key 'action'"),
        (
            'kind = "step"\naction = "rollback immediately"\n',
            "item #1: item A: key 'action' is only for items of kind \"signal\"",
        ),
    ],
)
def test_item_action_mistakes_are_named(tmp_path: Path, extra: str, expected: str) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(
        RUNBOOK_TABLE + '[[item]]\nid = "A"\nsection = "S"\ntext = "t"\nphase = "alpha"\n'
        'stage = "monitor"\npending = "later"\n' + extra
    )
    with pytest.raises(ConfigError) as info:
        load_catalog(path)
    assert f"{path}: item #1: item A:" in str(info.value)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("decision_phase", "expected"),
    [
        ('"beta2"', None),
        (
            '"rollback"',
            "[runbook] decision_phase = 'rollback': not one of the phases (alpha, beta2)",
        ),
        ('["beta2"]', "[runbook] decision_phase = ['beta2']: not one of the phases"),
    ],
)
def test_decision_phase_must_be_a_phase(
    tmp_path: Path, decision_phase: str, expected: str | None
) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(
        RUNBOOK_TABLE + f"decision_phase = {decision_phase}\n"
        '[[item]]\nid = "A"\nsection = "S"\ntext = "t"\nkind = "step"\nphase = "beta2"\n'
        'stage = "entry"\npending = "later"\n'
    )
    if expected is None:
        assert load_catalog(path).decision_phase == "beta2"
        return
    with pytest.raises(ConfigError) as info:
        load_catalog(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


#: A window the runbook fixes, not one the config sets: "add 2-3 more sessions per day".
FIXED_WINDOW_TITLES = {"canary.expand.pace"}
WINDOW_NUMBER = re.compile(r"\b(\d+ ?h|\d+ ?d|\d+ days?|\d+-day|\d+ hours?)\b")


def test_no_gate_title_writes_a_configurable_window_as_a_number() -> None:
    """Titles name the configured windows through placeholders ({canary_duration}), so a run
    with longer windows never shows the runbook's default in its titles."""
    catalog = load_catalog(CATALOG)
    written = {
        g.id: g.title
        for g in catalog.gates.values()
        if g.id not in FIXED_WINDOW_TITLES and WINDOW_NUMBER.search(g.title)
    }
    assert written == {}


def test_gate_titles_show_the_configured_windows() -> None:
    catalog = load_catalog(CATALOG)
    windows = Windows(canary_duration_h=60.0, gradual_days=9.0, archive_retention_days=45.0)
    values = title_values(AgtmuxSettings(windows=windows))
    titles = {g.id: render_title(g, values) for g in catalog.gates.values()}
    assert titles["canary.exit.stable-48h"].startswith("canary phase running 60h, ")
    assert titles["gradual.exit.archive-7d"].startswith("9d of passing archived runs")
    assert "retained 45d past the decommission" in titles["cutover.exit.v4-binary-retained"]
    defaults = {g.id: render_title(g, title_values(None)) for g in catalog.gates.values()}
    assert defaults["canary.exit.stable-48h"].startswith("canary phase running 48h, ")
    assert not any("{" in t for t in (*titles.values(), *defaults.values()))
