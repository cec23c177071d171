"""Property-based tests of the config loader: whatever a config file holds, loading it either
succeeds or raises ConfigError, one line naming the file (the plugin's usage error, exit 4);
never anything else."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from pytest_canarygate.agtmux.pack import PACK
from pytest_canarygate.agtmux.settings import Thresholds
from pytest_canarygate.agtmux.settings import Windows
from pytest_canarygate.config import MAXIMUM
from pytest_canarygate.config import CanarygateConfig
from pytest_canarygate.config import load_config
from pytest_canarygate.config import parse_config
from pytest_canarygate.errors import ConfigError

PROPERTIES = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SOURCE = "props/canarygate.toml"
BASE_DIR = Path(__file__).resolve().parent  # existing: resolve() then looks at each part
VALID_TEXT = """
[migration]
id = "agtmux-v4-to-v5"
[daemons.v4]
endpoint = "unix:///run/agtmux-v4/agtmuxd.sock"
[daemons.v5]
endpoint = "unix:///run/agtmux-v5/agtmuxd.sock"
"""
VALID: dict[str, Any] = {
    "migration": {"id": "agtmux-v4-to-v5"},
    "daemons": {
        "v4": {"endpoint": "unix:///run/agtmux-v4/agtmuxd.sock"},
        "v5": {"endpoint": "unix:///run/agtmux-v5/agtmuxd.sock"},
    },
}

# --- what a TOML file can hold ----------------------------------------------------------------

scalars = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),  # nan and inf included: TOML has them
    st.booleans(),
    st.datetimes(),
    st.dates(),
    st.times(),
)
keys = st.text(max_size=12)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=12,
)
toml_dicts = st.dictionaries(keys, values, max_size=6)

# --- values a config might plausibly hold at a known key --------------------------------------

uris = st.builds(
    lambda *parts: "".join(parts),
    st.sampled_from(["unix", "file", "http", "https", "UNIX", "FILE", "tcp", ""]),
    st.sampled_from(["://", ":///", ":", ":/"]),
    st.sampled_from(["", "", "", "me@", "me:s3cr3t@", "@"]),
    st.sampled_from(["", "", "localhost", "127.0.0.1:9464", "[::1]", "ops.example", "[::1", "h:x"]),
    st.sampled_from(["/run/x.sock", "/srv/ops", "/", "", "/a b", "/a%3Fb"])
    | st.text(alphabet="/ab.%?#@:[]\x00 ", max_size=12),
    st.sampled_from(["", "", "", "?token=s3cr3t", "#frag", "?", "#", "?a#b"]),
)
numbers = st.one_of(
    st.sampled_from(
        sorted(
            {
                f.metadata[MAXIMUM]
                for cls in (Windows, Thresholds)
                for f in cls.__dataclass_fields__.values()
            }
        )
    ).flatmap(lambda m: st.sampled_from([m, m + 1, m - 1, m * 1.5, -m])),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
)
string_lists = st.lists(st.text(max_size=10), max_size=4) | st.just("*")
paths = st.text(alphabet="/.~a\x00\\", max_size=8)
plausible = st.one_of(uris, numbers, string_lists, paths, values)

EVIDENCE_KINDS = sorted({a.kind for a in PACK.accessors.values()})
#: Per table: the keys to set (a path below the top) and the values most likely to get past
#: the checks before them, besides anything a TOML file can hold.
TABLES: dict[str, tuple[list[tuple[str, ...]], st.SearchStrategy[Any]]] = {
    "migration": ([("migration",), ("migration", "id"), ("migration", "pack")], st.text()),
    "daemons": (
        [("daemons",), ("daemons", "v4"), ("daemons", "v5", "endpoint"), ("daemons", "v4", "x")],
        uris,
    ),
    "timeouts": ([("timeouts", "connect_s"), ("timeouts", "read_s")], numbers),
    "observation": (
        [("observation", "version_interval_s"), ("observation", "clock_skew_s")],
        numbers,
    ),
    "catalog": ([("catalog",), ("catalog", "path")], paths),
    "reports": ([("reports",), ("reports", "dir")], paths),
    "evidence": ([("evidence",), *[("evidence", kind) for kind in EVIDENCE_KINDS]], uris),
    "sources": ([("sources",), ("sources", "expected_healthy")], string_lists),
    "parity": (
        [
            ("parity",),
            ("parity", "panes"),
            *[("parity", t, k) for t in ("panes", "sessions") for k in ("fields", "ignore")],
        ],
        string_lists,
    ),
    "windows": ([("windows",), *[("windows", n) for n in Windows.__dataclass_fields__]], numbers),
    "thresholds": (
        [("thresholds",), *[("thresholds", n) for n in Thresholds.__dataclass_fields__]],
        numbers,
    ),
}
PATHS = [path for table_paths, _ in TABLES.values() for path in table_paths]
unknown_paths = st.tuples(st.sampled_from(["", "windows", "evidence", "parity"]), keys).map(
    lambda pair: pair if pair[0] else pair[1:]
)
edits = st.lists(
    st.tuples(st.sampled_from(PATHS) | unknown_paths, plausible),
    min_size=1,
    max_size=6,
)


def edited(changes: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    """The valid config with each ``(path, value)`` set (tables made where needed)."""
    data = copy.deepcopy(VALID)
    for path, value in changes:
        table = data
        for name in path[:-1]:
            if not isinstance(table.get(name), dict):
                table[name] = {}
            table = table[name]
        table[path[-1]] = value
    return data


def parse(data: dict[str, Any]) -> CanarygateConfig | ConfigError:
    try:
        return parse_config(data, source=SOURCE, base_dir=BASE_DIR, pack=PACK)
    except ConfigError as exc:
        return exc


def assert_one_line_naming(error: ConfigError, source: str) -> None:
    message = str(error)
    assert message.startswith(f"{source}: "), message
    assert "\n" not in message, message


# --- the properties --------------------------------------------------------------------------


@PROPERTIES
@given(toml_dicts)
def test_any_toml_table_loads_or_raises_config_error(data: dict[str, Any]) -> None:
    got = parse(data)
    if isinstance(got, ConfigError):
        assert_one_line_naming(got, SOURCE)


def check_edits(changes: list[tuple[tuple[str, ...], Any]]) -> None:
    got = parse(edited(changes))
    if isinstance(got, ConfigError):
        assert_one_line_naming(got, SOURCE)
        return
    # what loads is within range, and its URIs carry nothing that leaks into the bundle
    windows, thresholds = got.pack_settings.windows, got.pack_settings.thresholds
    for obj in (windows, thresholds):
        for f in obj.__dataclass_fields__.values():
            assert 0 < getattr(obj, f.name) <= f.metadata[MAXIMUM]
    windows.longest()
    for uri in [*got.evidence.values(), *(d.endpoint for d in got.daemons.values())]:
        assert "?" not in uri
        assert "#" not in uri


@PROPERTIES
@given(edits)
def test_any_values_at_any_keys_load_or_raise_config_error(
    changes: list[tuple[tuple[str, ...], Any]],
) -> None:
    check_edits(changes)


@pytest.mark.parametrize("table", sorted(TABLES))
def test_any_value_at_the_keys_of_one_table_loads_or_raises_config_error(table: str) -> None:
    """One table at a time, so the checks of the tables read before it do not stop every
    example first."""
    table_paths, likely = TABLES[table]
    changes = st.lists(
        st.tuples(st.sampled_from(table_paths), likely | values), min_size=1, max_size=3
    )
    settings(PROPERTIES, max_examples=100)(given(changes)(check_edits))()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config-props")


def spliced(at: int, blob: bytes) -> bytes:
    text = VALID_TEXT.encode()
    at = at % (len(text) + 1)
    return text[:at] + blob + text[at:]


file_contents = st.one_of(
    st.binary(max_size=400),
    st.builds(spliced, st.integers(min_value=0), st.binary(min_size=1, max_size=12)),
    st.text(max_size=200).map(lambda t: (VALID_TEXT + t).encode("utf-8")),
)


@PROPERTIES
@given(blob=file_contents)
def test_any_bytes_as_a_file_load_or_raise_config_error(folder: Path, blob: bytes) -> None:
    path = folder / "canarygate.toml"
    path.write_bytes(blob)
    try:
        load_config(path, PACK)
    except ConfigError as exc:
        assert_one_line_naming_file(exc, path)


def assert_one_line_naming_file(error: ConfigError, path: Path) -> None:
    message = str(error)
    assert message.startswith((f"{path}: ", f"config file {path} ")), message
    assert "\n" not in message, message
