"""The engine stands apart from the agtmux pack: it imports none of it, works without it, and
leaks no unprefixed option or fixture into other projects' runs."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from gate_repo import make_gate_repo
from gate_repo import only_run

import pytest_canarygate

ENGINE = Path(pytest_canarygate.__file__).resolve().parent
PACK_PACKAGE = "pytest_canarygate.agtmux"


def engine_modules() -> list[Path]:
    return sorted(p for p in ENGINE.rglob("*.py") if "agtmux" not in p.relative_to(ENGINE).parts)


def imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", engine_modules(), ids=lambda p: p.name)
def test_no_engine_module_imports_the_pack(path: Path) -> None:
    leaks = sorted(n for n in imported_names(path) if n.startswith(PACK_PACKAGE))
    assert not leaks, f"{path.relative_to(ENGINE.parent)} imports {leaks}"


@pytest.mark.parametrize("path", engine_modules(), ids=lambda p: p.name)
def test_no_engine_module_names_the_pack_even_as_a_string(path: Path) -> None:
    """importlib or an entry point string would tie the engine to the pack just the same."""
    assert PACK_PACKAGE not in path.read_text(encoding="utf-8"), path.name


def test_the_engine_imports_and_works_with_the_pack_missing(tmp_path: Path) -> None:
    """Every engine module imports, and a config and catalog load, with the pack unimportable."""
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(
        '[runbook]\ntitle = "t"\nphases = ["one"]\nread_only_methods = ["get_*"]\n'
        '[[item]]\nid = "I-1"\nsection = "S"\ntext = "t"\nkind = "step"\nphase = "one"\n'
        'stage = "entry"\n[[gate]]\nid = "g"\nitem = "I-1"\ntitle = "g"\nneeds = ["a:get_x"]\n'
    )
    config = tmp_path / "canarygate.toml"
    config.write_text('[migration]\nid = "m"\n[daemons.a]\nendpoint = "unix:///run/a/a.sock"\n')
    modules = [
        ".".join(p.relative_to(ENGINE.parent).with_suffix("").parts).removesuffix(".__init__")
        for p in engine_modules()
        if p.name != "__main__.py"  # running it is the CLI
    ]
    script = textwrap.dedent(
        f"""
        import importlib, sys
        from pathlib import Path

        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name == {PACK_PACKAGE!r} or name.startswith({PACK_PACKAGE!r} + "."):
                    raise ImportError("the pack is not installed")

        sys.meta_path.insert(0, Refuse())
        for name in {modules!r}:
            importlib.import_module(name)
        from pytest_canarygate.catalog import load_catalog
        from pytest_canarygate.config import load_config
        from pytest_canarygate.pack import Pack

        catalog = load_catalog(Path({str(catalog)!r}))
        pack = Pack(name="p", catalog=Path({str(catalog)!r}), daemons=("a",))
        settings = load_config(Path({str(config)!r}), pack)
        assert catalog.phases == ("one",) and list(settings.daemons) == ["a"]
        assert not [m for m in sys.modules if m.startswith({PACK_PACKAGE!r})]
        print("engine alone: ok", len({modules!r}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("engine alone: ok")


def test_no_pack_installed_is_one_clear_usage_error(pytester: pytest.Pytester) -> None:
    make_gate_repo(pytester, config='[migration]\nid = "m"\n')
    result = pytester.runpytest_subprocess("--phase=alpha", "-p", "no:canarygate_agtmux")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no runbook pack is installed*pytest_canarygate_packs*"])


def test_a_project_with_its_own_stage_option_and_fixtures_is_untouched(
    pytester: pytest.Pytester,
) -> None:
    """Generic names stay free: a conftest may add --stage, --sim and fixtures named observed,
    tmux_session or settings while canarygate is installed."""
    pytester.makeconftest(
        """
        import pytest

        def pytest_addoption(parser):
            parser.addoption("--stage")
            parser.addoption("--sim")
            parser.addoption("--require-promotable", action="store_true")

        @pytest.fixture
        def observed():
            return "mine"

        @pytest.fixture
        def tmux_session():
            return "mine too"
        """
    )
    pytester.makepyfile(
        "def test_own(observed, tmux_session, request):\n"
        "    assert request.config.getoption('stage') == 'x'\n"
        "    assert (observed, tmux_session) == ('mine', 'mine too')\n"
    )
    result = pytester.runpytest_subprocess("--stage=x", "--sim=y")
    result.assert_outcomes(passed=1)


def test_a_phase_run_works_with_xdist_disabled(pytester: pytest.Pytester) -> None:
    make_gate_repo(pytester)
    result = pytester.runpytest_subprocess(
        "--phase=alpha", "--canarygate-sim=healthy", "-p", "no:xdist"
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    _, data = only_run(pytester.path)
    assert data["verdict"] == "pass"
    assert {g["verdict"] for g in data["gates"]} == {"PASS"}


def test_with_allure_disabled_every_gate_is_judged_but_the_bundle_is_incomplete(
    pytester: pytest.Pytester,
) -> None:
    """Without allure-pytest the bundle holds no per-gate results: the run says so and is
    never green, but it judges every gate and still seals its folder."""
    make_gate_repo(pytester)
    result = pytester.runpytest_subprocess(
        "--phase=alpha", "--canarygate-sim=healthy", "-p", "no:allure_pytest"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    result.stdout.fnmatch_lines(["*allure-pytest is disabled: the bundle holds no gate results*"])
    bundle, data = only_run(pytester.path)
    assert data["verdict"] == "incomplete"
    assert {g["verdict"] for g in data["gates"]} == {"PASS"}
    assert bundle.name.endswith("-incomplete")


def test_hooks_that_only_observe_cannot_change_what_gates_judge(pytester: pytest.Pytester) -> None:
    make_gate_repo(pytester)
    pytester.makeconftest(
        """
        def pytest_canarygate_observation_ready(config, observation):
            for daemon in observation.daemons.values():
                daemon.calls.clear()
            observation.evidence.clear()

        def pytest_canarygate_run_finished(config, outcome, bundle, summary):
            outcome.results.clear()
            summary["verdict"] = "changed"
        """
    )
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    _, data = only_run(pytester.path)
    assert data["verdict"] == "pass"
    assert {g["verdict"] for g in data["gates"]} == {"PASS"}
