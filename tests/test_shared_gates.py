"""One test judging several gates (``@gate("a", "b")``), and gate titles that show the
configured windows rather than a number written into the catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gate_repo import only_run
from gate_repo import write_gates

from pytest_canarygate.catalog import load_catalog
from pytest_canarygate.catalog import render_title
from pytest_canarygate.errors import ConfigError

#: The simulator replaces the endpoints; a config still names them.
SIM_CONFIG = (
    '[migration]\nid = "m"\n'
    '[daemons.v4]\nendpoint = "unix:///run/agtmux-v4/agtmuxd.sock"\n'
    '[daemons.v5]\nendpoint = "unix:///run/agtmux-v5/agtmuxd.sock"\n'
)
XDIST = pytest.mark.parametrize("dist", [[], ["-n", "2"]], ids=["no-xdist", "xdist-2"])

HEAD = (
    '[runbook]\ntitle = "test"\ndocument = "runbook.md"\n'
    'phases = ["alpha", "canary", "gradual", "cutover", "rollback"]\n'
    'read_only_methods = ["list_*", "*_changed", "latency_status", "daemon.info", "ops.*"]\n'
)


def item(item_id: str, phase: str, stage: str) -> str:
    return (
        f'[[item]]\nid = "{item_id}"\nsection = "S"\ntext = "check {item_id}"\n'
        f'kind = "step"\nphase = "{phase}"\nstage = "{stage}"\n'
    )


def gate_entry(gate_id: str, item_id: str, title: str, extra: str = "") -> str:
    return (
        f'[[gate]]\nid = "{gate_id}"\nitem = "{item_id}"\ntitle = "{title}"\n'
        f'needs = ["v5:daemon.info"]\n{extra}'
    )


CATALOG = (
    HEAD
    + item("A-1", "alpha", "entry")
    + item("A-2", "alpha", "exit")
    + item("C-1", "canary", "entry")
    + gate_entry("shared.before", "A-1", "v5 answers before alpha")
    + gate_entry("shared.after", "A-2", "v5 answers after {alpha_monitor} of alpha")
    + gate_entry("shared.canary", "C-1", "v5 answers before canary")
)

#: One body, three gates; it fails only the exit gate, so each instance is judged on its own.
MODULE = (
    "from pytest_canarygate import gate\n\n"
    "@gate('shared.before', 'shared.after', 'shared.canary')\n"
    "def test_v5_answers(canarygate_observed, canarygate_gate_id):\n"
    "    assert canarygate_observed.daemon('v5').result('daemon.info')['pid'] > 0\n"
    "    assert canarygate_gate_id != 'shared.after', 'judged as ' + canarygate_gate_id\n"
)


def verdicts(root: Path) -> dict[str, str]:
    _, run = only_run(root)
    return {g["gate"]: g["verdict"] for g in run["gates"]}


@XDIST
def test_one_test_judges_each_gate_of_the_phase_under_its_own_item(
    pytester: pytest.Pytester, dist: list[str]
) -> None:
    write_gates(pytester, CATALOG, MODULE)
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy", *dist)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert verdicts(pytester.path) == {"shared.before": "PASS", "shared.after": "FAIL"}
    _, run = only_run(pytester.path)
    items = {g["gate"]: g["item"] for g in run["gates"]}
    assert items == {"shared.before": "A-1", "shared.after": "A-2"}
    failed = next(g for g in run["gates"] if g["gate"] == "shared.after")
    assert "judged as shared.after" in failed["message"]


def test_the_same_test_in_another_phase_judges_that_phases_gate(
    pytester: pytest.Pytester,
) -> None:
    write_gates(pytester, CATALOG, MODULE)
    result = pytester.runpytest_subprocess("--phase=canary", "--canarygate-sim=healthy")
    assert verdicts(pytester.path) == {"shared.canary": "PASS"}
    result.stdout.no_fnmatch_line("*shared.before*")


def test_gates_of_one_test_must_be_parametrized_alike(pytester: pytest.Pytester) -> None:
    catalog = CATALOG.replace(
        'title = "v5 answers before canary"\n',
        'title = "v5 answers before canary"\nper = "agtmux_tmux_session"\n',
    )
    write_gates(pytester, catalog, MODULE)
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*one test judges gates with different 'per'*shared.canary*"])


def test_a_shared_test_naming_an_unknown_gate_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    write_gates(pytester, CATALOG, MODULE.replace("'shared.canary'", "'shared.typo'"))
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*@gate names 'shared.typo', no gate of*catalog.toml*"])


@pytest.mark.parametrize("ids", [(), ("a", "a"), ("a", "")])
def test_gate_refuses_no_id_a_repeated_or_an_empty_one(ids: tuple[str, ...]) -> None:
    from pytest_canarygate import gate

    with pytest.raises(TypeError):
        gate(*ids)


def test_allure_titles_show_the_configured_window_and_links_the_published_runbook(
    pytester: pytest.Pytester,
) -> None:
    write_gates(pytester, CATALOG, MODULE)
    (pytester.path / "canarygate.toml").write_text(
        SIM_CONFIG
        + "[windows]\nalpha_monitor_h = 36\n"
        + '[reports]\nrunbook_url = "https://git.example.org/runbook.md"\n'
    )
    pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy")
    run_dir, _ = only_run(pytester.path)
    results = [
        json.loads(p.read_text()) for p in (run_dir / "allure-results").glob("*-result.json")
    ]
    names = {r["name"] for r in results}
    links = {link["url"] for r in results for link in r["links"]}
    assert links == {"https://git.example.org/runbook.md#s"}  # the items' section "S"
    assert names == {
        "shared.before: v5 answers before alpha",
        "shared.after: v5 answers after 36h of alpha",
    }


def test_a_title_placeholder_the_pack_does_not_fill_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    write_gates(pytester, CATALOG.replace("{alpha_monitor}", "{alpha_window}"), MODULE)
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*gate shared.after: title placeholder {alpha_window} is not one the pack fills*"]
    )


@pytest.mark.parametrize(
    "title", ["{alpha_monitor:>5}", "{alpha_monitor!r}", "{0}", "{windows.x}", "unclosed {"]
)
def test_a_title_with_anything_but_plain_placeholders_is_refused(
    tmp_path: Path, title: str
) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(HEAD + item("A-1", "alpha", "entry") + gate_entry("g", "A-1", title))
    with pytest.raises(ConfigError, match="gate g: title"):
        load_catalog(path)


def test_render_title_fills_placeholders_and_keeps_doubled_braces(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    title = "{{literal}} after {canary_duration}"
    path.write_text(HEAD + item("A-1", "alpha", "entry") + gate_entry("g", "A-1", title))
    spec = load_catalog(path).gates["g"]
    assert render_title(spec, {"canary_duration": "72h"}) == "{literal} after 72h"
    with pytest.raises(ConfigError, match=r"\{canary_duration\} is not one the pack fills"):
        render_title(spec, {})
