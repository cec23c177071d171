"""`canarygate html`: a verified bundle rendered beside it as one offline, analytics-free HTML
file that opens on the verdict, by the Allure 3 this installation owns and no other.

The rendering tests need the real Allure 3 (`make html-tool`); without it they FAIL with that
hint: CI installs it, so a missing tool is a broken setup.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import sys
from pathlib import Path

import pytest
from bundle_helpers import KeyPair
from bundle_helpers import make_bundle
from bundle_helpers import make_predicate
from gate_repo import make_gate_repo
from gate_repo import only_run

from pytest_canarygate.cli import main
from pytest_canarygate.report_html import ALLURE_ENV_VAR
from pytest_canarygate.report_html import INSTALL_COMMAND
from pytest_canarygate.report_html import AllureNotFound
from pytest_canarygate.report_html import BundleRefusedError
from pytest_canarygate.report_html import HtmlReportError
from pytest_canarygate.report_html import OutputRefusedError
from pytest_canarygate.report_html import default_output
from pytest_canarygate.report_html import find_allure
from pytest_canarygate.report_html import offline_problems
from pytest_canarygate.report_html import render_html
from pytest_canarygate.signing import seal_bundle
from pytest_canarygate.verify import verify_bundle

ROOT = Path(__file__).resolve().parents[1]
TEST_NAME = "test_canarygate_html_marker_gate"
_B64_LITERAL = re.compile(r"[\"'`]([A-Za-z0-9+/]{16,}={0,2})[\"'`]")


def _allure() -> Path:
    try:
        return find_allure()
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


def _sealed_bundle(
    pytester: pytest.Pytester, tmp_path: Path, keys: KeyPair, **predicate: object
) -> Path:
    """A bundle with real Allure results of one passing test, sealed with ``keys``."""
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
    seal_bundle(bundle, {**make_predicate(bundle), **predicate}, keys.signer)
    return bundle


def _fake_bundle(tmp_path: Path, keys: KeyPair) -> Path:
    """A sealed bundle whose allure-results a fake Allure never reads."""
    bundle = make_bundle(tmp_path, files={"allure-results/x-result.json": b"{}"})
    seal_bundle(bundle, make_predicate(bundle), keys.signer)
    return bundle


def test_a_verified_bundle_is_rendered_beside_it_opening_on_the_verdict(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    allure = _allure()
    keys = KeyPair(tmp_path / "keys")
    bundle = _sealed_bundle(
        pytester,
        tmp_path,
        keys,
        promotable=False,
        not_promotable_because=["gate alpha.parity.panes FAIL: pane %5 differs"],
        target={"kind": "simulated", "scenario": "healthy"},
    )
    before = sorted(p.relative_to(bundle) for p in bundle.rglob("*"))

    target = render_html(bundle, trusted_keys=keys.trusted, allure=allure)

    assert target == bundle.with_name(bundle.name + ".html") == default_output(bundle)
    assert sorted(p.relative_to(bundle) for p in bundle.rglob("*")) == before
    assert verify_bundle(bundle, keys.trusted).ok  # the bundle holds nothing new
    html = target.read_text(encoding="utf-8")
    body = html[html.lower().index("<body") :]
    banner = body[: body.index("</div></div>") if "</div></div>" in body else 4000]
    assert 'id="canarygate-verdict"' in banner
    assert "NOT PROMOTABLE" in banner
    assert "gate alpha.parity.panes FAIL: pane %5 differs" in banner
    assert "SIMULATED" in banner
    assert f"signed by key {keys.keyid}" in banner
    title = re.search(r"<title>(.*?)</title>", html, re.DOTALL)
    assert title is not None
    assert title.group(1) == f"{make_predicate(bundle)['migration_id']} canary 2025-01-01T00:05:00Z"
    assert TEST_NAME in _report_text(html)
    assert offline_problems(html) == []


def test_untrusted_text_in_the_verdict_is_escaped(tmp_path: Path) -> None:
    keys = KeyPair(tmp_path / "keys")
    bundle = make_bundle(tmp_path, files={"allure-results/x-result.json": b"{}"})
    predicate = {
        **make_predicate(bundle),
        "promotable": False,
        "not_promotable_because": ['<script>alert("x")</script>'],
    }
    seal_bundle(bundle, predicate, keys.signer)
    fake = _fake_allure(tmp_path, "<html><head><title>Allure Report</title></head><body></body>")

    html = render_html(bundle, trusted_keys=keys.trusted, allure=fake).read_text()

    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "Allure Report" not in html


def test_a_tampered_bundle_is_refused_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = KeyPair(tmp_path / "keys")
    bundle = _fake_bundle(tmp_path, keys)
    (bundle / "allure-results" / "x-result.json").write_bytes(b'{"status": "passed"}')
    marker = tmp_path / "allure-ran"
    fake = _fake_allure(tmp_path, "<html><body></body></html>", marker=marker)

    with pytest.raises(BundleRefusedError, match=r"INVALID, not rendered: .*sha256 mismatch"):
        render_html(bundle, trusted_keys=keys.trusted, allure=fake)
    code = main(["html", str(bundle), "--key", str(keys.public_path), "--allure", str(fake)])

    assert code == 1
    assert "sha256 mismatch" in capsys.readouterr().err
    assert not default_output(bundle).exists()
    assert not marker.exists()


def test_a_bundle_signed_by_an_untrusted_key_is_refused(tmp_path: Path) -> None:
    bundle = _fake_bundle(tmp_path, KeyPair(tmp_path / "keys"))
    other = KeyPair(tmp_path / "other")
    fake = _fake_allure(tmp_path, "<html><body></body></html>")
    with pytest.raises(BundleRefusedError, match="not trusted"):
        render_html(bundle, trusted_keys=other.trusted, allure=fake)
    assert not default_output(bundle).exists()


def test_html_command_renders_to_a_chosen_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = KeyPair(tmp_path / "keys")
    bundle = _fake_bundle(tmp_path, keys)
    fake = _fake_allure(tmp_path, "<html><body><p>gates</p></body></html>")
    out = tmp_path / "rendered.html"

    code = main(
        [
            *("html", str(bundle), "--key", str(keys.public_path)),
            *("--allure", str(fake), "--output", str(out)),
        ]
    )

    assert code == 0
    assert 'id="canarygate-verdict"' in out.read_text()
    assert str(out) in capsys.readouterr().out
    assert not default_output(bundle).exists()
    assert oct(out.stat().st_mode & 0o777) == oct(0o644)


def test_the_report_is_never_written_through_a_symlink(tmp_path: Path) -> None:
    keys = KeyPair(tmp_path / "keys")
    bundle = _fake_bundle(tmp_path, keys)
    fake = _fake_allure(tmp_path, "<html><body></body></html>")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / "index.html"
    victim.write_text("keep me")
    default_output(bundle).symlink_to(victim)
    with pytest.raises(OutputRefusedError, match="is a symbolic link"):
        render_html(bundle, trusted_keys=keys.trusted, allure=fake)
    linked_folder = tmp_path / "linked"
    linked_folder.symlink_to(elsewhere)
    with pytest.raises(OutputRefusedError, match="folder is a symbolic link"):
        render_html(bundle, linked_folder / "index.html", trusted_keys=keys.trusted, allure=fake)
    assert victim.read_text() == "keep me"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["index.html"]


@pytest.mark.parametrize("inside", ["html/index.html", "report.html", "allure-results/r.html"])
def test_output_inside_the_bundle_is_refused(tmp_path: Path, inside: str) -> None:
    keys = KeyPair(tmp_path / "keys")
    bundle = _fake_bundle(tmp_path, keys)
    with pytest.raises(OutputRefusedError, match="inside the bundle"):
        render_html(bundle, bundle / inside, trusted_keys=keys.trusted, allure=tmp_path / "no")
    assert verify_bundle(bundle, keys.trusted).ok


def test_an_allure_planted_near_the_bundle_is_never_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A valid bundle inside a planted project whose .tools/allure would run as the user."""
    keys = KeyPair(tmp_path / "keys")
    project = tmp_path / "planted"
    (project / "pyproject.toml").parent.mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    bin_dir = project / ".tools" / "allure" / "node_modules" / ".bin"
    bin_dir.mkdir(parents=True)
    marker = tmp_path / "planted-allure-ran"
    _fake_allure(bin_dir, "<html><body></body></html>", marker=marker).rename(bin_dir / "allure")
    bundle = _fake_bundle(project, keys)
    monkeypatch.chdir(project)
    monkeypatch.delenv(ALLURE_ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")

    try:
        render_html(bundle, trusted_keys=keys.trusted)
    except HtmlReportError:
        pass  # the installation's own Allure may reject the fake results; it ran, not the plant

    assert not marker.exists()
    assert find_allure() != bin_dir / "allure"


def _fake_allure(
    directory: Path, body: str, version: str = "3.18.0", *, marker: Path | None = None
) -> Path:
    """An executable that answers --version and writes ``body`` as the report (and touches
    ``marker`` when it renders)."""
    script = directory / "fake-allure"
    touch = f"pathlib.Path({str(marker)!r}).touch()\n" if marker else ""
    script.write_text(
        f"#!{sys.executable}\n"
        "import pathlib, sys\n"
        "args = sys.argv[1:]\n"
        f"if args == ['--version']:\n    print({version!r}); sys.exit(0)\n"
        f"{touch}"
        "out = pathlib.Path(args[args.index('--output') + 1])\n"
        "out.mkdir(parents=True, exist_ok=True)\n"
        f"(out / 'index.html').write_text({body!r})\n"
    )
    script.chmod(0o755)
    return script


def test_a_report_with_analytics_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    keys = KeyPair(tmp_path / "keys")
    bundle = _fake_bundle(tmp_path, keys)
    fake = _fake_allure(
        tmp_path,
        '<html><script async src="https://www.googletagmanager.com/gtag/js?id=G-X"></script>',
    )

    with pytest.raises(HtmlReportError, match=r"mentions googletagmanager\.com"):
        render_html(bundle, trusted_keys=keys.trusted, allure=fake)

    assert not default_output(bundle).exists()
    assert [p.name for p in bundle.parent.iterdir()] == [bundle.name]


def test_offline_problems_finds_analytics_hidden_in_a_data_uri() -> None:
    hidden = base64.b64encode(b"fetch('https://www.google-analytics.com/g/collect')").decode()
    html = f'<html><script src="data:text/javascript;base64,{hidden}"></script></html>'
    assert offline_problems(html) == ["embedded data URI #1 mentions google-analytics.com"]


def test_offline_problems_finds_network_loaded_scripts() -> None:
    problems = offline_problems('<script src="https://cdn.example.org/app.js"></script>')
    assert len(problems) == 1
    assert "cdn.example.org" in problems[0]
    assert offline_problems("<p>see https://example.org</p><script>var x=1</script>") == []


def test_a_missing_allure_names_where_it_looked_and_how_to_install(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-allure"
    with pytest.raises(AllureNotFound) as excinfo:
        find_allure(missing)
    message = str(excinfo.value)
    assert f"--allure {missing}" in message
    assert INSTALL_COMMAND in message
    assert ALLURE_ENV_VAR in message


def test_a_wrong_allure_in_the_environment_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-allure"
    with pytest.raises(AllureNotFound, match=f"at \\${ALLURE_ENV_VAR}="):
        find_allure(environ={ALLURE_ENV_VAR: str(missing)})


def test_allure_must_be_version_3(tmp_path: Path) -> None:
    old = _fake_allure(tmp_path, "", version="2.30.0")
    with pytest.raises(AllureNotFound, match=r"is not Allure 3 \(version 2\.30\.0\)"):
        find_allure(environ={ALLURE_ENV_VAR: str(old), "PATH": ""})
    new = _fake_allure(tmp_path / "..", "")
    assert find_allure(environ={ALLURE_ENV_VAR: str(new), "PATH": ""}) == new


def test_an_allure_others_may_write_is_refused(tmp_path: Path) -> None:
    fake = _fake_allure(tmp_path, "")
    fake.chmod(0o775)
    with pytest.raises(AllureNotFound, match="writable by group or others"):
        find_allure(fake)


def test_html_command_fails_cleanly_on_a_folder_that_is_no_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = KeyPair(tmp_path / "keys")
    bundle = make_bundle(tmp_path, files={"run.json": b"{}"})
    assert main(["html", str(bundle), "--key", str(keys.public_path)]) == 3
    assert "not an evidence bundle" in capsys.readouterr().err


def test_html_command_needs_a_trusted_key(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, files={"run.json": b"{}"})
    with pytest.raises(SystemExit) as excinfo:
        main(["html", str(bundle)])
    assert excinfo.value.code == 2


def test_the_json_verify_output_is_the_same_source_the_banner_reads(tmp_path: Path) -> None:
    """The banner and `verify --json` read one summary: same promotable, same reasons."""
    keys = KeyPair(tmp_path / "keys")
    bundle = make_bundle(tmp_path, files={"allure-results/x-result.json": b"{}"})
    reasons = ["gate g FAIL: x", "it judged the simulator"]
    seal_bundle(
        bundle,
        {**make_predicate(bundle), "promotable": False, "not_promotable_because": reasons},
        keys.signer,
    )
    fake = _fake_allure(tmp_path, "<html><body></body></html>")
    html = render_html(bundle, trusted_keys=keys.trusted, allure=fake).read_text()
    from pytest_canarygate.verify import result_to_json

    summary = result_to_json(verify_bundle(bundle, keys.trusted))["summary"]
    assert summary["not_promotable_because"] == reasons
    assert all(f"<li>{r}</li>" in html for r in reasons)
    assert json.dumps(summary)  # JSON-ready


def test_the_report_links_to_the_signed_runbook_text_inside_the_bundle(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """A run carries the runbook it was judged against, signed; the report beside the bundle
    links to it with a relative link that resolves."""
    keys = KeyPair(tmp_path / "keys")
    make_gate_repo(pytester)
    runbook = pytester.path / "docs" / "runbook" / "migration-canary-rollback.md"
    runbook.parent.mkdir(parents=True)
    runbook.write_bytes((ROOT / "docs" / "runbook" / runbook.name).read_bytes())
    pytester.runpytest_subprocess(
        "--phase=alpha", "--canarygate-sim=healthy", f"--canarygate-key={keys.private_path}"
    )
    bundle, _ = only_run(pytester.path)
    assert (bundle / "runbook" / runbook.name).read_bytes() == runbook.read_bytes()
    assert verify_bundle(bundle, keys.trusted).ok
    fake = _fake_allure(tmp_path, "<html><body></body></html>")

    target = render_html(bundle, trusted_keys=keys.trusted, allure=fake)

    hrefs = re.findall(r'href="([^"]+)"', target.read_text())
    assert hrefs == [f"{bundle.name}/runbook/{runbook.name}"]
    assert (target.parent / hrefs[0]).is_file()


def test_the_verdict_names_the_signer_the_config_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = KeyPair(tmp_path / "keys")
    bundle = _fake_bundle(tmp_path, keys)
    fake = _fake_allure(tmp_path, "<html><body></body></html>")
    config = tmp_path / "canarygate.toml"
    config.write_text(
        f'[[signers]]\nname = "ci-signer"\nkey = "{keys.public_path}"\nitems = ["*"]\n'
    )
    args = ["html", str(bundle), "--key", str(keys.public_path), "--allure", str(fake)]

    assert main([*args, "--config", str(config)]) == 0
    html = default_output(bundle).read_text()
    assert f"signed by ci-signer (key {keys.keyid})" in html

    broken = tmp_path / "broken.toml"
    broken.write_text('[[signers]]\nname = "x"\n')
    assert main([*args, "--config", str(broken), "--output", str(tmp_path / "b.html")]) == 2
    assert "signers[0]" in capsys.readouterr().err
    assert not (tmp_path / "b.html").exists()
