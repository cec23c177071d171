"""The ``canarygate`` command as a user meets it, in real subprocesses: one exit-code table for
every subcommand, hints that work as printed, no traceback when the output pipe closes early,
and a missing module reported by name."""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from bundle_helpers import KeyPair
from bundle_helpers import make_bundle
from bundle_helpers import make_predicate

from pytest_canarygate import cli
from pytest_canarygate import keys
from pytest_canarygate.cli import EXIT_BROKEN_PIPE
from pytest_canarygate.cli import EXIT_CODES
from pytest_canarygate.cli import EXIT_FAILED
from pytest_canarygate.cli import EXIT_MALFORMED
from pytest_canarygate.cli import EXIT_OK
from pytest_canarygate.cli import EXIT_USAGE
from pytest_canarygate.cli import main
from pytest_canarygate.keys import KEY_ENV_VAR
from pytest_canarygate.signing import ENVELOPE_NAME
from pytest_canarygate.signing import PAYLOAD_TYPE
from pytest_canarygate.signing import seal_bundle

REPO = Path(__file__).resolve().parent.parent
CATALOG = REPO / "gates" / "catalog.toml"
COMMAND = [sys.executable, "-m", "pytest_canarygate"]
TIMEOUT = 120


def canarygate(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``canarygate ARGS`` in a subprocess; stdout and stderr captured as text."""
    return subprocess.run(
        [*COMMAND, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT,
    )


def assert_clean_error(proc: subprocess.CompletedProcess[str]) -> None:
    """A failing subcommand says why (verify on stdout, the others on stderr), no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert (proc.stderr + proc.stdout).strip(), "no message saying what went wrong"


# --- the table itself -----------------------------------------------------------------------


def test_help_prints_the_one_exit_code_table() -> None:
    proc = canarygate("--help")
    assert proc.returncode == EXIT_OK, proc.stderr
    assert EXIT_CODES in proc.stdout
    assert "EXIT_CODES" in (cli.__doc__ or "")  # the docstring points at it, no second copy
    table = EXIT_CODES.splitlines()[1:]
    codes = [line.split()[0] for line in table if not line.startswith("     ")]
    assert codes == ["0", "1", "2", "3", "130", "141"]


# --- every subcommand on bad input ----------------------------------------------------------

Case = Callable[[Path], tuple[list[str], dict[str, str] | None]]


def _args(*args: str) -> Case:
    return lambda tmp: (list(args), None)


def _write(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


def _sealed(tmp: Path) -> tuple[Path, KeyPair]:
    pair = KeyPair(tmp)
    bundle = make_bundle(tmp)
    seal_bundle(bundle, make_predicate(bundle), pair.signer)
    return bundle, pair


def _tampered(tmp: Path) -> tuple[list[str], None]:
    bundle, pair = _sealed(tmp)
    (bundle / "run.json").write_text("tampered")
    return ["verify", str(bundle), "--key", str(pair.public_path)], None


def _unsigned(tmp: Path) -> tuple[list[str], None]:
    pair = KeyPair(tmp)
    bundle = make_bundle(tmp)
    envelope = {"payload": base64.b64encode(b"{}").decode(), "payloadType": PAYLOAD_TYPE}
    (bundle / ENVELOPE_NAME).write_text(json.dumps({**envelope, "signatures": []}))
    return ["verify", str(bundle), "--key", str(pair.public_path)], None


def _verify_with(
    tmp: Path, bundle: str, key: str | None = None, *, html: bool = False
) -> tuple[list[str], None]:
    key = key or str(KeyPair(tmp).public_path)
    return ["html" if html else "verify", bundle, "--key", key], None


def _existing_key(tmp: Path) -> tuple[list[str], None]:
    KeyPair(tmp, "k.pem")
    return ["keygen", str(tmp / "k.pem")], None


def _html(tmp: Path, *extra: str, tamper: bool = False) -> tuple[list[str], dict[str, str]]:
    pair = KeyPair(tmp)
    bundle = make_bundle(tmp, files={"allure-results/x-result.json": b"{}"})
    seal_bundle(bundle, make_predicate(bundle), pair.signer)
    if tamper:
        (bundle / "allure-results" / "x-result.json").write_text("tampered")
    env = {**os.environ, "CANARYGATE_ALLURE": str(tmp / "no-allure-here")}
    given = (arg.replace("BUNDLE", str(bundle)) for arg in extra)
    return ["html", str(bundle), "--key", str(pair.public_path), *given], env


CASES: list[tuple[str, Case, int]] = [
    ("no-subcommand", _args(), EXIT_USAGE),
    ("unknown-subcommand", _args("frobnicate"), EXIT_USAGE),
    (
        "catalog-unknown-phase",
        _args("catalog", "--catalog", str(CATALOG), "--phase", "nope"),
        EXIT_USAGE,
    ),
    ("catalog-missing-file", lambda t: (["catalog", "--catalog", str(t / "no.toml")], None), 2),
    ("catalog-no-default-catalog", _args("catalog"), EXIT_USAGE),  # run in an empty directory
    ("sim-no-scenario", _args("sim"), EXIT_USAGE),
    ("sim-unknown-scenario", _args("sim", "--scenario", "nope"), EXIT_USAGE),
    ("sim-missing-file", lambda t: (["sim", "--scenario", str(t / "no.toml")], None), 2),
    (
        "sim-not-toml",
        lambda t: (["sim", "--scenario", _write(t, "bad.toml", "not [ toml")], None),
        EXIT_MALFORMED,
    ),
    (
        "sim-invalid-scenario",
        lambda t: (["sim", "--scenario", _write(t, "bad.toml", "description = 1\n")], None),
        EXIT_MALFORMED,
    ),
    ("keygen-no-path", _args("keygen"), EXIT_USAGE),
    ("keygen-existing-key", _existing_key, EXIT_USAGE),
    (
        "keygen-cannot-write",
        lambda t: (["keygen", str(Path(_write(t, "file", "")) / "k.pem")], None),
        EXIT_FAILED,
    ),
    ("verify-no-key-option", lambda t: (["verify", str(make_bundle(t))], None), EXIT_USAGE),
    ("verify-missing-bundle", lambda t: _verify_with(t, str(t / "nope")), EXIT_USAGE),
    (
        "verify-missing-key",
        lambda t: _verify_with(t, str(make_bundle(t)), str(t / "no.pub.json")),
        EXIT_USAGE,
    ),
    (
        "verify-malformed-key",
        lambda t: _verify_with(t, str(make_bundle(t)), _write(t, "k.pub.json", "{garbage")),
        EXIT_MALFORMED,
    ),
    ("verify-empty-directory", lambda t: _verify_with(t, str(t)), EXIT_MALFORMED),
    ("verify-file-not-bundle", lambda t: _verify_with(t, _write(t, "f", "x")), EXIT_MALFORMED),
    ("verify-unsigned", _unsigned, EXIT_FAILED),
    ("verify-tampered", _tampered, EXIT_FAILED),
    ("html-no-key-option", lambda t: (["html", str(make_bundle(t))], None), EXIT_USAGE),
    ("html-missing-bundle", lambda t: _verify_with(t, str(t / "nope"), html=True), EXIT_USAGE),
    ("html-not-a-bundle", lambda t: _verify_with(t, str(t), html=True), EXIT_MALFORMED),
    ("html-output-inside-bundle", lambda t: _html(t, "--output", "BUNDLE/r.html"), EXIT_USAGE),
    ("html-tampered-bundle", lambda t: _html(t, tamper=True), EXIT_FAILED),
    ("html-no-allure", lambda t: _html(t), EXIT_FAILED),
]


@pytest.mark.parametrize(
    ("case", "expected"), [(c, e) for _, c, e in CASES], ids=[i for i, *_ in CASES]
)
def test_every_subcommand_follows_the_exit_code_table(
    case: Case, expected: int, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    args, env = case(tmp_path)
    proc = canarygate(*args, cwd=work, env=env)
    assert proc.returncode == expected, proc.stdout + proc.stderr
    assert_clean_error(proc)


def test_catalog_that_does_not_parse_is_malformed_input(tmp_path: Path) -> None:
    bad = _write(tmp_path, "catalog.toml", "[[item]]\nid = 1\n")
    proc = canarygate("catalog", "--catalog", bad)
    assert proc.returncode == EXIT_MALFORMED, proc.stderr


def test_the_good_paths_exit_0(tmp_path: Path) -> None:
    assert canarygate("catalog", "--catalog", str(CATALOG)).returncode == EXIT_OK
    assert canarygate("sim", "--list").returncode == EXIT_OK
    assert canarygate("keygen", str(tmp_path / "k.pem")).returncode == EXIT_OK
    bundle, pair = _sealed(tmp_path / "sealed")
    proc = canarygate("verify", str(bundle), "--key", str(pair.public_path))
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr


# --- printed hints work as printed ----------------------------------------------------------


def test_keygen_hints_use_the_equals_form_with_an_absolute_quoted_path(tmp_path: Path) -> None:
    work = tmp_path / "dir with space"
    work.mkdir()
    proc = canarygate("keygen", "k.pem", cwd=work)  # relative path, from another directory
    assert proc.returncode == EXIT_OK, proc.stderr
    private = str(work / "k.pem")
    assert "--canarygate-key " not in proc.stdout
    option_lines = [line for line in proc.stdout.splitlines() if "--canarygate-key" in line]
    assert len(option_lines) == 1
    words = shlex.split(option_lines[0].split(":", 1)[1], comments=True)
    assert words[0] == "pytest"
    assert f"--canarygate-key={private}" in words
    export_lines = [line for line in proc.stdout.splitlines() if f"{KEY_ENV_VAR}=" in line]
    assert len(export_lines) == 1
    assert shlex.split(export_lines[0].split(":", 1)[1]) == ["export", f"{KEY_ENV_VAR}={private}"]
    verify_hint = next(line for line in proc.stdout.splitlines() if "canarygate verify" in line)
    assert verify_hint.rstrip(")").endswith("--key k.pem.pub.json")


def test_keygen_help_and_missing_key_message_use_the_equals_form(tmp_path: Path) -> None:
    proc = canarygate("keygen", "--help")
    assert proc.returncode == EXIT_OK
    text = " ".join(proc.stdout.split())  # argparse rewraps the epilog
    assert "--canarygate-key=PATH" in text
    assert "--canarygate-key PATH" not in text
    with pytest.raises(keys.ConfigError) as info:
        keys.load_signer(tmp_path / "absent.pem")
    assert "--canarygate-key=PATH" in str(info.value)


# --- a closed output pipe -------------------------------------------------------------------

BROKEN_PIPE_COMMANDS = [
    ("help", lambda t: ["--help"]),
    ("catalog", lambda t: ["catalog", "--catalog", str(CATALOG)]),
    ("catalog-json", lambda t: ["catalog", "--catalog", str(CATALOG), "--json"]),
    ("sim-list", lambda t: ["sim", "--list"]),
    ("keygen", lambda t: ["keygen", str(t / "k.pem")]),
    ("verify", lambda t: ["verify", str(t), "--key", str(KeyPair(t, "v.pem").public_path)]),
]


@pytest.mark.parametrize(
    "argv", [a for _, a in BROKEN_PIPE_COMMANDS], ids=[i for i, _ in BROKEN_PIPE_COMMANDS]
)
def test_output_into_a_closed_pipe_exits_141_without_a_traceback(
    argv: Callable[[Path], list[str]], tmp_path: Path
) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte: every write fails (EPIPE)
    try:
        proc = subprocess.run(
            [*COMMAND, *argv(tmp_path)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            timeout=TIMEOUT,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == EXIT_BROKEN_PIPE, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "BrokenPipeError" not in proc.stderr
    assert "Exception ignored" not in proc.stderr


@pytest.mark.skipif(
    not hasattr(__import__("fcntl"), "F_SETPIPE_SZ"), reason="needs Linux F_SETPIPE_SZ"
)
def test_reader_closing_after_the_first_line_like_head(tmp_path: Path) -> None:
    """``canarygate catalog --json | head -1``: the pipe is shrunk to one page so the writer is
    certainly still writing when the reader goes away after its first line."""
    import fcntl

    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    proc = subprocess.Popen(
        [*COMMAND, "catalog", "--catalog", str(CATALOG), "--json"],
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        first = reader.readline()
    _, err = proc.communicate(timeout=TIMEOUT)
    assert first.strip() == b"{"
    assert proc.returncode == EXIT_BROKEN_PIPE, err
    assert "Traceback" not in err
    assert "Exception ignored" not in err


# --- a missing module ------------------------------------------------------------------------


def _without(module: str, *argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a subprocess where importing ``module`` fails (ModuleNotFoundError)."""
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from pytest_canarygate.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT,
    )


def test_missing_dependency_is_one_line_naming_it(tmp_path: Path) -> None:
    proc = _without("securesystemslib", "keygen", str(tmp_path / "k.pem"))
    assert proc.returncode == EXIT_FAILED
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("canarygate keygen: error: cannot load pytest_canarygate.keys")
    assert "'securesystemslib'" in lines[0]
    assert not (tmp_path / "k.pem").exists()


def test_a_broken_subcommand_is_listed_and_the_others_still_work(tmp_path: Path) -> None:
    helped = _without("securesystemslib", "--help")
    assert helped.returncode == EXIT_OK, helped.stderr
    assert "unavailable: cannot load pytest_canarygate.verify" in " ".join(helped.stdout.split())
    for argv in (["verify", "--help"], ["verify", "--key", "x", "-z"]):
        proc = _without("securesystemslib", *argv)
        assert proc.returncode == EXIT_FAILED
        assert "'securesystemslib'" in proc.stderr
        assert "invalid choice" not in proc.stderr
    catalog = _without("securesystemslib", "catalog", "--catalog", str(CATALOG))
    assert catalog.returncode == EXIT_OK, catalog.stderr


def test_a_missing_package_of_our_own_is_not_an_unknown_subcommand() -> None:
    """The old import loop skipped a subcommand whose missing module was a prefix of its own
    name, so ``sim`` then failed as "invalid choice"."""
    proc = _without("pytest_canarygate.agtmux.sim", "sim", "--list")
    assert proc.returncode == EXIT_FAILED
    assert "invalid choice" not in proc.stderr
    assert "'pytest_canarygate.agtmux.sim'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_module_missing_when_the_command_runs_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def needs_nacl(args: object) -> int:
        raise ModuleNotFoundError("No module named 'nacl'", name="nacl")

    monkeypatch.setattr(keys, "_run_keygen", needs_nacl)
    assert main(["keygen", str(tmp_path / "k.pem")]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.startswith("canarygate keygen: error: module 'nacl' is missing")
    assert len(err.splitlines()) == 1


def test_a_subcommand_imports_only_its_own_module(tmp_path: Path) -> None:
    """``canarygate verify`` loads neither the simulator nor the report renderer: its start
    costs the verifier only."""
    pair = KeyPair(tmp_path / "keys")
    bundle = make_bundle(tmp_path)
    seal_bundle(bundle, make_predicate(bundle), pair.signer)
    needed = {"pytest_canarygate.verify", "pytest_canarygate.keys"}  # verify loads keys
    others = sorted(set(cli.subcommand_modules().values()) - needed)
    assert "pytest_canarygate.agtmux.sim.cli" in others
    code = (
        "import json, sys\n"
        "from pytest_canarygate.cli import main\n"
        "code = main(sys.argv[2:])\n"
        "print(json.dumps([m for m in json.loads(sys.argv[1]) if m in sys.modules]))\n"
        "sys.exit(code)\n"
    )

    def loaded_by(*argv: str) -> tuple[int, list[str]]:
        proc = subprocess.run(
            [sys.executable, "-c", code, json.dumps(others), *argv],
            capture_output=True,
            text=True,
            check=False,
            timeout=TIMEOUT,
        )
        return proc.returncode, json.loads(proc.stdout.splitlines()[-1])

    assert loaded_by("verify", str(bundle), "--key", str(pair.public_path)) == (EXIT_OK, [])
    assert loaded_by() == (EXIT_USAGE, others)  # no subcommand: the listing names them all
