"""run.json: valid JSON a person can read, a line per top-level key and per gate instance,
holding what ``json.dumps(..., indent=1, sort_keys=True)`` held, in the same order."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from typing import cast

import pytest
from gate_repo import make_gate_repo
from gate_repo import only_run
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from pytest_canarygate.session import RUN_FILE
from pytest_canarygate.session import GateSession


def _write(run_dir: Path, **extra: Any) -> str:
    """The run.json ``GateSession._write_run_file`` writes for a session of fixed facts."""
    session = SimpleNamespace(
        settings=None,
        phase="alpha",
        pack=SimpleNamespace(name="agtmux"),
        stage=None,
        migration_id="m",
        catalog=SimpleNamespace(path=Path("gates/catalog.toml"), paths=[], digest="ab" * 32),
        started_at="2026-12-05T00:00:00.000Z",
        observation=None,
        run_dir=run_dir,
        _run_facts=lambda: {"v4": {"state": "answering", "version": "0.0.4"}},
    )
    GateSession._write_run_file(cast(GateSession, session), {"kind": "simulated"}, **extra)
    return (run_dir / RUN_FILE).read_text()


def _with_order(text: str) -> Any:
    """The JSON in ``text`` with every object as its list of (key, value) pairs, in order."""
    return json.loads(text, object_pairs_hook=list)


def _as_before(text: str, extra: dict[str, Any]) -> str:
    """What run.json held when it was written with ``indent=1``: ``extra`` as given, the rest
    (plain strings and objects of them) as ``text`` holds it."""
    base = {k: v for k, v in json.loads(text).items() if k not in extra}
    return json.dumps({**base, **extra}, indent=1, sort_keys=True) + "\n"


HOSTILE = 'a"b\\c}, {"d": [1]}\n\t\r\x00\x1f\u2028 é 😀 \ud800 ]]> <x> & null'


def test_run_json_has_a_line_per_key_and_per_gate(tmp_path: Path) -> None:
    gates = [
        {
            "nodeid": f"t.py::g[{i}]",
            "gate": "g",
            "verdict": "FAIL",
            "message": HOSTILE,
            "param": None,
        }
        for i in range(3)
    ] + [{"zz": [], "aa": {}, "nested": {"deep": [1, {"x": HOSTILE}]}}]
    fleet = {
        "verdict": "fail",
        "targets": {f"t{i}": {"verdict": "pass", "counts": {"PASS": 3}} for i in (2, 10, 1)},
    }
    text = _write(tmp_path, gates=gates, fleet=fleet, counts={"PASS": 3}, incomplete=[])
    data = json.loads(text)
    assert data["gates"] == gates
    assert data["fleet"] == fleet
    lines = text.splitlines()
    # every top-level key starts its own line, sorted
    keys = [line.split('"')[1] for line in lines if line.startswith(' "')]
    assert keys == sorted(data)
    assert len(keys) == len(data)
    # every gate instance is one line of compact JSON, in order
    start = lines.index(' "gates": [')
    rows = [json.loads(line.strip().removesuffix(",")) for line in lines[start + 1 : start + 5]]
    assert rows == gates
    assert lines[start + 5] == " ],"
    # a fleet's targets: one per line, as every object or array of objects or arrays
    assert '  "targets": {' in lines
    assert '   "t1": {"counts": {"PASS": 3}, "verdict": "pass"},' in lines
    assert ' "incomplete": [],' in lines  # empty: on the key's line
    assert text.endswith("\n}\n")
    assert text.isascii()  # json's ensure_ascii, as before


def test_run_json_holds_what_the_indented_writer_held_in_its_order(tmp_path: Path) -> None:
    extra = {
        "gates": [{"b": 1, "a": (1, 2.5, None, True)}, {HOSTILE: HOSTILE}],
        "by_number": {10: "ten", 2: "two"},  # keys json turns into strings, sorted as numbers
        "floats": [1e300, -0.0, 0.1],
        "empty": {},
    }
    text = _write(tmp_path, **extra)
    assert _with_order(text) == _with_order(_as_before(text, extra))
    assert list(json.loads(text)["by_number"]) == ["2", "10"]
    assert json.loads(text)["gates"][1] == {HOSTILE: HOSTILE}


_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_JSON = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


_KEYS = st.text(max_size=8).filter(lambda k: k != "target")  # target: a parameter of its own


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(extra=st.dictionaries(_KEYS, _JSON, max_size=6))
def test_any_run_json_reads_back_as_written(
    tmp_path_factory: pytest.TempPathFactory, extra: dict[str, Any]
) -> None:
    text = _write(tmp_path_factory.mktemp("run"), **extra)
    read = json.loads(text)
    assert {k: read[k] for k in extra} == extra
    assert _with_order(text) == _with_order(_as_before(text, extra))


def test_a_run_writes_a_readable_run_json(pytester: pytest.Pytester) -> None:
    make_gate_repo(pytester)
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    bundle, data = only_run(pytester.path)
    lines = (bundle / RUN_FILE).read_text().splitlines()
    start = lines.index(' "gates": [')
    rows = [
        json.loads(line.strip().removesuffix(","))
        for line in lines[start + 1 : start + 1 + len(data["gates"])]
    ]
    assert rows == data["gates"]
    assert len(rows) > 10
    assert [line.split('"')[1] for line in lines if line.startswith(' "')] == sorted(data)
