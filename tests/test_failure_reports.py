"""How failed gates are reported: a deliberate verdict is its own line, made without pytest's
traceback of it, and thousands of failures do not each get a section on the terminal."""

from __future__ import annotations

import json

import pytest
from gate_repo import one_item_catalog
from gate_repo import only_run
from gate_repo import write_gates

from pytest_canarygate.session import MAX_FAILURE_SECTIONS

XDIST = pytest.mark.parametrize("dist", [[], ["-n", "2"]], ids=["serial", "xdist-2"])

FOUR_ENDINGS = (
    "from pytest_canarygate import Inconclusive, Unobservable, gate\n\n"
    "def _deep(exc):\n"
    "    raise exc\n\n"
    "@gate('gone.gate')\ndef test_gone(canarygate_observed):\n"
    "    _deep(Unobservable('v9 is not answering'))\n\n"
    "@gate('unsure.gate')\ndef test_unsure(canarygate_observed):\n"
    "    _deep(Inconclusive('too few readings'))\n\n"
    "@gate('broken.gate')\ndef test_broken(canarygate_observed):\n"
    "    _deep(KeyError('no such field'))\n\n"
    "@gate('checked.gate')\ndef test_checked(canarygate_observed):\n"
    "    assert 1 + 1 == 3, 'two is not three'\n"
)

#: Writes the test running whenever pytest formats a traceback (every process, xdist too).
COUNT_TRACEBACKS = """
import os

from _pytest._code.code import ExceptionInfo

_made = ExceptionInfo.getrepr

def _counted(self, *args, **kwargs):
    running = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
    with open(os.path.join(os.path.dirname(__file__), "tracebacks.txt"), "a") as out:
        out.write(running + "\\n")
    return _made(self, *args, **kwargs)

ExceptionInfo.getrepr = _counted
"""


@XDIST
def test_a_deliberate_verdict_is_reported_without_pytest_making_its_traceback(
    pytester: pytest.Pytester, dist: list[str]
) -> None:
    write_gates(
        pytester,
        one_item_catalog(
            ("gone.gate", "v5:daemon.info"),
            ("unsure.gate", "v5:daemon.info"),
            ("broken.gate", "v5:daemon.info"),
            ("checked.gate", "v5:daemon.info"),
        ),
        FOUR_ENDINGS,
        name="test_endings.py",
    )
    pytester.makeconftest(COUNT_TRACEBACKS)
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy", *dist)
    assert result.ret == 1
    for line in (  # in whatever order the gates ran
        "*UNOBSERVABLE [[]gone.gate / A-1[]] v9 is not answering*",
        "*INCONCLUSIVE [[]unsure.gate / A-1[]] too few readings*",
        "*FAIL [[]broken.gate / A-1[]] gate error: KeyError: 'no such field'*",
        "*FAIL [[]checked.gate / A-1[]] two is not three*",
    ):
        result.stdout.fnmatch_lines([line])
    run_dir, run = only_run(pytester.path)
    verdicts = {g["gate"]: (g["verdict"], g["message"].splitlines()[0]) for g in run["gates"]}
    assert verdicts == {
        "gone.gate": ("UNOBSERVABLE", "v9 is not answering"),
        "unsure.gate": ("INCONCLUSIVE", "too few readings"),
        "broken.gate": ("FAIL", "gate error: KeyError: 'no such field'"),
        "checked.gate": ("FAIL", "two is not three"),
    }
    formatted = (pytester.path / "tracebacks.txt").read_text().split()
    # a gate's own bug has its traceback made; a verdict raised on purpose never has one
    assert any(name.endswith("::test_broken") for name in formatted), formatted
    assert not [n for n in formatted if not n.endswith("::test_broken")], formatted
    # that traceback is the trace of the gate's Allure result; the terminal keeps one line
    traces = {}
    for path in (run_dir / "allure-results").glob("*-result.json"):
        result_file = json.loads(path.read_text())
        traces[result_file["fullName"].rpartition("#")[2]] = result_file["statusDetails"]["trace"]
    assert "_deep(KeyError('no such field'))" in traces["test_broken"]
    assert "KeyError" in traces["test_broken"].splitlines()[-1]
    assert traces["test_gone"] == "UNOBSERVABLE [gone.gate / A-1] v9 is not answering"
    assert "_deep(" not in result.stdout.str()


def test_on_ci_a_gate_error_is_one_line_on_the_terminal(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gate's own bug is its verdict line wherever pytest prints the failure, on CI too
    (where pytest's short summary prints a report whole), however many instances hit it."""
    monkeypatch.setenv("CI", "true")
    write_gates(
        pytester,
        one_item_catalog(("many.gate", "v5:daemon.info")),
        "import pytest\nfrom pytest_canarygate import gate\n\n"
        "@pytest.mark.parametrize('n', range(3))\n"
        "@gate('many.gate')\ndef test_many(canarygate_observed, n):\n"
        "    {}['field %d' % n]\n",
        name="test_many.py",
    )
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy")
    assert result.ret == 1
    for n in range(3):
        result.stdout.fnmatch_lines([f"FAILED gates/test_many.py::test_many[[]{n}[]]*"])
        result.stdout.fnmatch_lines(
            [f"FAIL [[]many.gate / A-1[]] gate error: KeyError: 'field {n}'"]
        )
    assert "{}['field %d' % n]" not in result.stdout.str()  # no traceback on the terminal


def _failing_gates(count: int) -> str:
    return (
        "import pytest\nfrom pytest_canarygate import Inconclusive, gate\n\n"
        f"@pytest.mark.parametrize('n', range({count}))\n"
        "@gate('many.gate')\ndef test_many(canarygate_observed, n):\n"
        "    raise Inconclusive(f'instance {n} cannot be judged')\n"
    )


@pytest.mark.parametrize(
    ("count", "options", "sections"),
    [
        (MAX_FAILURE_SECTIONS + 1, [], False),
        (MAX_FAILURE_SECTIONS + 1, ["--tb=short"], True),
        (MAX_FAILURE_SECTIONS, [], True),
    ],
    ids=["over-the-bound", "asked-for", "at-the-bound"],
)
def test_more_failures_than_a_screen_holds_get_no_section_each(
    pytester: pytest.Pytester, count: int, options: list[str], sections: bool
) -> None:
    write_gates(
        pytester,
        one_item_catalog(("many.gate", "v5:daemon.info")),
        _failing_gates(count),
        name="test_many.py",
    )
    result = pytester.runpytest_subprocess(
        "--phase=alpha", "--canarygate-sim=healthy", "-rf", *options
    )
    assert result.ret == 1
    out = result.stdout.str()
    # each failed instance is still named, once, in the short summary
    assert out.count("FAILED gates/test_many.py::test_many[") == count, out
    assert ("= FAILURES =" in out) is sections
    bounded = f"canarygate: {count} gate instances failed: each is named below"
    assert (bounded in out) is not sections
    # the bundle has every message whole either way
    bundle, run = only_run(pytester.path)
    messages = sorted(g["message"] for g in run["gates"])
    assert messages == sorted(f"instance {n} cannot be judged" for n in range(count))
    junit = (bundle / "junit.xml").read_text()
    assert junit.count("cannot be judged") >= count
    assert json.loads((bundle / "run.json").read_text())["counts"] == {"INCONCLUSIVE": count}
