"""Rendering a bundle's Allure results as one offline, analytics-free HTML file with Allure 3.

The rendering test needs the real Allure 3 (``npm install --prefix .tools/allure allure@3``);
without it the test FAILS with that hint: CI installs it, so a missing tool is a broken setup.
"""

from __future__ import annotations

import base64
import binascii
import re
import sys
from pathlib import Path

import pytest
from bundle_helpers import KeyPair
from bundle_helpers import make_bundle
from bundle_helpers import make_predicate

from pytest_canarygate.cli import main
from pytest_canarygate.report_html import ALLURE_ENV_VAR
from pytest_canarygate.report_html import INSTALL_COMMAND
from pytest_canarygate.report_html import AllureNotFound
from pytest_canarygate.report_html import HtmlReportError
from pytest_canarygate.report_html import find_allure
from pytest_canarygate.report_html import offline_problems
from pytest_canarygate.report_html import render_html
from pytest_canarygate.signing import seal_bundle
from pytest_canarygate.verify import verify_bundle

TEST_NAME = "test_canarygate_html_marker_gate"
_B64_LITERAL = re.compile(r"[\"'`]([A-Za-z0-9+/]{16,}={0,2})[\"'`]")


def _allure() -> Path:
    try:
        return find_allure([Path(__file__).parent])
    except AllureNotFound as exc:
        pytest.fail(f"Allure 3 is required for this test: {exc}", pytrace=False)


def _report_text(html: str) -> str:
    """The HTML plus every base64 string literal in it decoded (Allure embeds its data so)."""
    parts = [html]
    for match in _B64_LITERAL.finditer(html):
        try:
            parts.append(base64.b64decode(match.group(1), validate=True).decode("utf-8", "replace"))
        except (binascii.Error, ValueError):
            continue
    return "\n".join(parts)


def _bundle_with_real_results(pytester: pytest.Pytester, tmp_path: Path) -> Path:
    bundle = make_bundle(tmp_path, files={"run.json": b"{}\n"})
    pytester.makepyfile(
        test_gates=f"""
            def {TEST_NAME}():
                assert 1 + 1 == 2
            """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:canarygate", "-p", "no:cacheprovider", f"--alluredir={bundle / 'allure-results'}"
    )
    result.assert_outcomes(passed=1)
    assert any((bundle / "allure-results").glob("*-result.json"))
    return bundle


def test_render_a_single_offline_file_from_real_allure_results(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    allure = _allure()
    keys = KeyPair(tmp_path / "keys")
    bundle = _bundle_with_real_results(pytester, tmp_path)
    seal_bundle(bundle, make_predicate(bundle), keys.signer)
    results_before = sorted(p.name for p in (bundle / "allure-results").iterdir())

    target = render_html(bundle, allure=allure)

    assert target == bundle / "html" / "index.html"
    assert [p.name for p in (bundle / "html").iterdir()] == ["index.html"]
    html = target.read_text(encoding="utf-8")
    assert TEST_NAME in _report_text(html)
    lowered = html.lower()
    assert "googletagmanager" not in lowered
    assert "google-analytics" not in lowered
    assert offline_problems(html) == []
    assert sorted(p.name for p in (bundle / "allure-results").iterdir()) == results_before
    assert verify_bundle(bundle, keys.trusted).ok  # html/ is derived, not evidence


def test_html_command_renders_to_a_chosen_directory(
    pytester: pytest.Pytester,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ALLURE_ENV_VAR, str(_allure()))  # pytester moved the cwd out of the repo
    bundle = _bundle_with_real_results(pytester, tmp_path)
    out = tmp_path / "rendered"

    assert main(["html", str(bundle), "--out", str(out)]) == 0

    assert (out / "index.html").is_file()
    assert str(out / "index.html") in capsys.readouterr().out
    assert not (bundle / "html").exists()


def _fake_allure(directory: Path, body: str, version: str = "3.18.0") -> Path:
    """An executable that answers --version and writes ``body`` as the report."""
    script = directory / "fake-allure"
    script.write_text(
        f"#!{sys.executable}\n"
        "import pathlib, sys\n"
        "args = sys.argv[1:]\n"
        f"if args == ['--version']:\n    print({version!r}); sys.exit(0)\n"
        "out = pathlib.Path(args[args.index('--output') + 1])\n"
        "out.mkdir(parents=True, exist_ok=True)\n"
        f"(out / 'index.html').write_text({body!r})\n"
    )
    script.chmod(0o755)
    return script


def test_a_report_with_analytics_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, files={"allure-results/x-result.json": b"{}"})
    fake = _fake_allure(
        tmp_path,
        '<html><script async src="https://www.googletagmanager.com/gtag/js?id=G-X"></script>',
    )

    with pytest.raises(HtmlReportError, match=r"mentions googletagmanager\.com"):
        render_html(bundle, allure=fake)

    assert list((bundle / "html").iterdir()) == []


def test_offline_problems_finds_analytics_hidden_in_a_data_uri() -> None:
    hidden = base64.b64encode(b"fetch('https://www.google-analytics.com/g/collect')").decode()
    html = f'<html><script src="data:text/javascript;base64,{hidden}"></script></html>'
    assert offline_problems(html) == ["embedded data URI #1 mentions google-analytics.com"]


def test_offline_problems_finds_network_loaded_scripts() -> None:
    problems = offline_problems('<script src="https://cdn.example.org/app.js"></script>')
    assert len(problems) == 1
    assert "cdn.example.org" in problems[0]
    assert offline_problems("<p>see https://example.org</p><script>var x=1</script>") == []


def test_missing_allure_names_where_it_looked_and_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AllureNotFound) as excinfo:
        find_allure([tmp_path], environ={"PATH": str(tmp_path / "empty")})
    message = str(excinfo.value)
    assert INSTALL_COMMAND in message
    assert ".tools/allure/node_modules/.bin/allure" in message
    assert "allure on PATH" in message
    assert ALLURE_ENV_VAR in message


def test_a_wrong_allure_in_the_environment_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-allure"
    with pytest.raises(AllureNotFound, match=f"looked at: \\${ALLURE_ENV_VAR}="):
        find_allure([Path(__file__).parent], environ={ALLURE_ENV_VAR: str(missing)})


def test_allure_from_the_environment_must_be_version_3(tmp_path: Path) -> None:
    old = _fake_allure(tmp_path, "", version="2.30.0")
    with pytest.raises(AllureNotFound, match=r"Not Allure 3: .*fake-allure \(version 2\.30\.0\)"):
        find_allure([tmp_path], environ={ALLURE_ENV_VAR: str(old), "PATH": ""})
    new = _fake_allure(tmp_path / "..", "")
    assert find_allure([tmp_path], environ={ALLURE_ENV_VAR: str(new), "PATH": ""}) == new


def test_output_inside_the_bundle_outside_html_is_refused(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, files={"allure-results/x-result.json": b"{}"})
    with pytest.raises(HtmlReportError, match="outside html/"):
        render_html(bundle, bundle / "report", allure=tmp_path / "unused")


def test_html_command_fails_cleanly_without_allure_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = make_bundle(tmp_path, files={"run.json": b"{}"})
    assert main(["html", str(bundle)]) == 3  # malformed: not an evidence bundle
    assert "no allure-results/ directory" in capsys.readouterr().err
