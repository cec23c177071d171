"""What loading the plugin costs: securesystemslib, cryptography and requests load only when
something is signed, verified or read over HTTP, and a missing one still fails at import."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from pytest_canarygate._requires import require

HEAVY = ("securesystemslib", "cryptography", "requests", "urllib3")
TIMEOUT = 120


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT,
    )


def last_json(proc: subprocess.CompletedProcess[str]) -> object:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_loading_the_plugins_and_the_session_imports_no_heavy_dependency() -> None:
    """What every pytest run loads with the plugin, and what an xdist worker of a phase run loads
    (it never signs, verifies nor reads an endpoint)."""
    proc = run_python(
        f"""
        import json, sys
        import pytest_canarygate.plugin
        import pytest_canarygate.agtmux.plugin
        import pytest_canarygate.session
        import pytest_canarygate.custody
        import pytest_canarygate.agtmux.providers.http
        print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
        """
    )
    assert last_json(proc) == []


def test_collecting_with_the_plugins_imports_no_heavy_dependency(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # only the plugins named below
    pytester.makeconftest(
        f"""
        import json, sys

        def pytest_collection_finish(session):
            loaded = [m for m in {HEAVY!r} if m in sys.modules]
            session.config.rootpath.joinpath("loaded.json").write_text(json.dumps(loaded))
        """
    )
    pytester.makepyfile(test_plain="def test_one():\n    pass\n")
    result = pytester.runpytest_subprocess(
        "-p", "pytest_canarygate.plugin", "-p", "pytest_canarygate.agtmux.plugin", "--co", "-q"
    )
    result.stdout.fnmatch_lines(["*1 test collected*"])
    assert json.loads((pytester.path / "loaded.json").read_text()) == []


def test_the_http_provider_loads_requests_on_its_first_read() -> None:
    proc = run_python(
        """
        import json, socket, sys
        from pytest_canarygate.agtmux.providers import Timeouts, make_provider
        from pytest_canarygate.errors import TransportError

        with socket.socket() as s:  # a port nobody listens on once closed
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        uri = f"http://127.0.0.1:{port}/ops"
        made = make_provider("alerts", uri, timeouts=Timeouts(connect=2.0, read=2.0))
        unused = make_provider("alerts", uri)
        unused.close()  # closing a provider that never read is quiet
        steps = ["requests" in sys.modules]
        try:
            made.alert_entries()
        except TransportError as exc:
            steps.append(str(exc))
        steps.append("requests" in sys.modules)
        made.close()
        print(json.dumps(steps))
        """
    )
    steps = last_json(proc)
    assert isinstance(steps, list)
    before, error, after = steps
    assert before is False
    assert "GET http://127.0.0.1:" in error
    assert "/ops/alert_ledger: cannot connect" in error
    assert after is True


@pytest.mark.parametrize(
    ("missing", "statement"),
    [
        ("securesystemslib", "import pytest_canarygate.plugin"),
        ("securesystemslib", "import pytest_canarygate.signing"),
        ("cryptography", "import pytest_canarygate.keys"),
        (
            "requests",
            "from pytest_canarygate.agtmux.providers import make_provider\n"
            "make_provider('alerts', 'http://127.0.0.1:9/ops')",
        ),
        ("urllib3", "import pytest_canarygate.agtmux.providers.http"),
    ],
)
def test_a_missing_dependency_still_fails_when_the_module_loads(
    missing: str, statement: str
) -> None:
    """As when the dependency was imported at the top: at once, naming it (not later, when the
    run is over and its bundle is to be sealed)."""
    proc = run_python(
        f"import json, sys\n"
        f"sys.modules[{missing!r}] = None\n"
        f"try:\n"
        f"{textwrap.indent(statement, '    ')}\n"
        f"except ModuleNotFoundError as exc:\n"
        f"    print(json.dumps([exc.name, str(exc)]))\n"
        f"else:\n"
        f"    print(json.dumps(None))\n"
    )
    found = last_json(proc)
    assert isinstance(found, list), "the module loaded without its dependency"
    name, message = found
    assert name.partition(".")[0] == missing
    assert missing in message


def test_require_names_the_first_missing_package_without_importing_any() -> None:
    assert "tabnanny" not in sys.modules
    require("json", "tabnanny")
    assert "tabnanny" not in sys.modules
    with pytest.raises(ModuleNotFoundError, match=r"^No module named 'no_such_pkg_cg'$") as raised:
        require("json", "no_such_pkg_cg", "also_missing_cg")
    assert raised.value.name == "no_such_pkg_cg"


def test_require_counts_a_blocked_module_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tabnanny", None)  # type: ignore[arg-type]
    with pytest.raises(ModuleNotFoundError) as raised:
        require("tabnanny")
    assert raised.value.name == "tabnanny"
