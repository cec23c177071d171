"""Every read is bounded in bytes and time: the archived binary's digest, the config file, the
daemon log (streamed, only its window kept) and the JUnit report (streamed, defusedxml)."""

from __future__ import annotations

import hashlib
import json
import os
import tracemalloc
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest
from gate_repo import make_gate_repo
from guards import promptly
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from pytest_canarygate.agtmux.providers import files
from pytest_canarygate.agtmux.providers import make_provider
from pytest_canarygate.agtmux.providers.daemon_log import LogScanner
from pytest_canarygate.agtmux.providers.junit import parse_junit
from pytest_canarygate.agtmux.records import RecordError
from pytest_canarygate.config import read_toml
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.errors import EndpointTimeout
from pytest_canarygate.errors import ProtocolError

NOW = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)
SINCE = NOW - timedelta(hours=24)
_COLOUR = {"TRACE": "35", "DEBUG": "34", "INFO": "32", "WARN": "33", "ERROR": "31"}


@pytest.fixture
def base(tmp_path: Path) -> Path:
    tmp_path.chmod(0o700)
    return tmp_path


def private(path: Path, data: bytes | str) -> Path:
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    path.chmod(0o600)
    return path


# --- the archived binary -------------------------------------------------------------------


def archive(base: Path, binary: bytes = b"\x7fELF v4") -> Path:
    private(base / "agtmux-v4", binary)
    manifest = {
        "binary": "agtmux-v4",
        "sha256": hashlib.sha256(binary).hexdigest(),
        "archived_at_ms": 1_795_564_800_000,
        "retain_until_ms": 1_795_564_800_000 + 30 * 86_400_000,
    }
    return private(base / "manifest.json", json.dumps(manifest))


def test_archived_binary_is_hashed_in_full(base: Path) -> None:
    binary = os.urandom(3 * (1 << 20) + 5)  # several read chunks
    manifest = make_provider("archive", archive(base, binary).as_uri()).archive_manifest().one()
    assert manifest.intact
    assert manifest.size_bytes == len(binary)


def test_archived_binary_larger_than_the_limit_is_refused(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "MAX_ARCHIVE_BYTES", 16)
    target = archive(base, b"x" * 17).as_uri()
    with pytest.raises(ProtocolError) as info:
        make_provider("archive", target).archive_manifest()
    message = str(info.value)
    assert f"{base / 'agtmux-v4'} is 17 bytes, more than the 16 read as evidence" in message
    assert "agtmux-v4:" in message  # names the file inside the manifest's folder


def test_archived_binary_past_its_time_limit_is_cut_off(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "ARCHIVE_SECONDS", -1.0)  # already over: no clock involved
    target = archive(base).as_uri()
    with pytest.raises(EndpointTimeout, match=r"reading .*agtmux-v4 took longer than the -1 s"):
        promptly(lambda: make_provider("archive", target).archive_manifest())


def test_every_evidence_file_read_has_a_time_limit(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "READ_SECONDS", -1.0)
    cursor = private(base / "cursor.json", "{}")
    with pytest.raises(EndpointTimeout, match=r"cursor\.json took longer than"):
        make_provider("cursor", cursor.as_uri()).cursor_stats()


# --- the config file -----------------------------------------------------------------------


def test_read_toml_refuses_a_fifo_without_blocking(base: Path) -> None:
    fifo = base / "canarygate.toml"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(ConfigError) as info:
        promptly(lambda: read_toml(fifo))
    assert str(info.value) == (
        f"config file {fifo} is a named pipe, not a regular file; give a TOML file"
    )


def test_read_toml_refuses_a_device_and_a_folder(base: Path) -> None:
    with pytest.raises(ConfigError, match="config file /dev/zero is a device, not a regular"):
        promptly(lambda: read_toml(Path("/dev/zero")))
    with pytest.raises(ConfigError, match=f"config file {base} is a directory"):
        read_toml(base)


def test_read_toml_follows_a_symlink_to_a_regular_file(base: Path) -> None:
    private(base / "real.toml", "[migration]\nid = 'x'\n")
    (base / "canarygate.toml").symlink_to(base / "real.toml")
    blob, data = read_toml(base / "canarygate.toml")
    assert data == {"migration": {"id": "x"}}
    assert blob.startswith(b"[migration]")


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_config_option_naming_a_fifo_is_a_one_line_usage_error(
    pytester: pytest.Pytester, kind: str
) -> None:
    make_gate_repo(pytester)
    if kind == "fifo":
        config = pytester.path / "canarygate.fifo.toml"
        os.mkfifo(config, 0o600)
        named = f"config file {config} is a named pipe, not a regular file"
    else:
        config = Path("/dev/zero")
        named = "config file /dev/zero is a device, not a regular file"
    result = pytester.runpytest_subprocess(
        "--phase=alpha", f"--canarygate-config={config}", timeout=120
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in result.stderr.lines if line.strip()]
    assert len(lines) == 1, result.stderr.str()
    assert named in lines[0]
    assert "Traceback" not in result.stdout.str()
    assert not list(pytester.path.glob("reports/*/*/*-running"))


# --- the daemon log ------------------------------------------------------------------------


def log_line(at: datetime, message: str, level: str = "INFO", colour: bool = True) -> str:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if not colour:
        return f"{stamp} {level:>5} agtmux::poll_loop: {message}\n"
    return (
        f"\x1b[2m{stamp}\x1b[0m \x1b[{_COLOUR[level]}m{level:>5}\x1b[0m "
        f"\x1b[2magtmux::poll_loop\x1b[0m\x1b[2m:\x1b[0m {message}\n"
    )


def test_log_lines_outside_the_window_are_not_kept(base: Path) -> None:
    text = (
        log_line(SINCE - timedelta(hours=2), "poll tick failed: old failure", "WARN")
        + "  caused by: an old cause\n"
        + log_line(SINCE - timedelta(seconds=1), "codex app-server reconnected")
        + log_line(SINCE, "poll tick failed: new failure", "WARN")
        + "  caused by: a new cause\n"
        + log_line(NOW, "SLO breach: p95=3224ms, consecutive=2", "WARN")
    )
    path = private(base / "agtmux.log", text)
    evidence = make_provider("daemon_log", path.as_uri()).log_events(SINCE)
    assert [(e.line, e.kind) for e in evidence.records] == [
        (4, "poll_tick_failed"),
        (6, "slo_breach"),
    ]
    assert evidence.records[0].message == "poll tick failed: new failure\n  caused by: a new cause"
    raw = evidence.raw_text()
    assert "old failure" not in raw
    assert "an old cause" not in raw
    assert "reconnected" not in raw
    assert raw == "".join(text.splitlines(keepends=True)[3:])  # the kept lines, as read
    # the coverage is still the whole log's
    assert evidence.covers_from == SINCE - timedelta(hours=2)
    assert evidence.covers_to == NOW


def big_log(path: Path, old_lines: int, window_lines: int) -> int:
    """A log of ``old_lines`` before SINCE then ``window_lines`` inside the window."""
    step = timedelta(days=30) / old_lines
    start = SINCE - timedelta(days=30)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        batch = []
        for n in range(old_lines):
            batch.append(log_line(start + n * step, f"poll tick failed: old {n}", "WARN"))
            if len(batch) >= 5000:
                out.write("".join(batch))
                batch.clear()
        for n in range(window_lines):
            batch.append(log_line(SINCE + timedelta(minutes=n + 1), f"source stale: s{n}", "WARN"))
        out.write("".join(batch))
    return path.stat().st_size


def test_a_log_far_larger_than_its_window_keeps_only_the_window(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "_CHUNK", 1 << 16)  # so a small log is many reads
    path = base / "agtmux.log"
    size = big_log(path, old_lines=60_000, window_lines=40)
    tracemalloc.start()
    try:
        evidence = make_provider("daemon_log", path.as_uri()).log_events(SINCE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [e.values["source_id"] for e in evidence.records] == [f"s{n}" for n in range(40)]
    assert evidence.raw_text().count("\n") == 40
    assert "old " not in evidence.raw_text()
    assert len(evidence.raw_text()) < size / 100
    # Streamed: the peak is the read buffer and the window, nowhere near the whole log.
    assert peak < size / 4, (peak, size)


def test_log_window_larger_than_kept_limit_is_refused(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "MAX_LOG_KEPT_BYTES", 300)
    text = "".join(log_line(SINCE + timedelta(seconds=n), f"line {n}") for n in range(10))
    path = private(base / "agtmux.log", text)
    with pytest.raises(ProtocolError, match="hold more than 300 bytes, more than is kept"):
        make_provider("daemon_log", path.as_uri()).log_events(SINCE)
    # the same lines outside the window cost nothing
    assert make_provider("daemon_log", path.as_uri()).log_events(NOW).records == ()


def test_a_log_line_longer_than_the_limit_is_cut_and_says_so(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "MAX_LOG_LINE_BYTES", 120)
    monkeypatch.setattr(files, "_CHUNK", 64)  # the line spans several reads
    long_line = log_line(NOW, "poll tick failed: " + "x" * 500, "WARN", colour=False)
    text = long_line + log_line(NOW, "codex app-server reconnected", colour=False)
    path = private(base / "agtmux.log", text)
    first, second = make_provider("daemon_log", path.as_uri()).log_events(SINCE).records
    assert first.kind == "poll_tick_failed"
    cut = len(long_line) - 1 - 120
    assert first.message.endswith(f"x [{cut} more bytes of this line not read]")
    assert (second.kind, second.line) == ("reconnected", 2)


def test_a_log_past_its_time_limit_is_cut_off(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "LOG_SECONDS", -1.0)
    path = private(base / "agtmux.log", log_line(NOW, "hi"))
    with pytest.raises(EndpointTimeout, match=r"agtmux\.log took longer than the -1 s allowed"):
        make_provider("daemon_log", path.as_uri()).log_events(SINCE)


def test_a_log_without_a_newline_anywhere_does_not_fill_memory(base: Path) -> None:
    path = base / "agtmux.log"
    private(path, log_line(NOW, "start").rstrip("\n") + " " + "y" * (3 << 20))
    (event,) = make_provider("daemon_log", path.as_uri()).log_events(SINCE).records
    assert event.message.startswith("start yyy")
    assert event.message.endswith("more bytes of this line not read]")
    assert len(event.message) < files.MAX_LOG_LINE_BYTES + 100


# The fast path (daemon-format heads outside the window, dated without stripping colours) must
# agree with the slow path on every line: same events, same coverage, same errors.
_STAMPS = st.builds(
    lambda day, second, micros, digits, tz: (day, second, micros, digits, tz),
    st.integers(0, 3),
    st.integers(0, 86_399),
    st.integers(0, 999_999),
    st.sampled_from([0, 3, 6, 9]),
    st.sampled_from(["Z", "z", "+00:00", "+02:00", "-0130"]),
)


def _stamp(spec: tuple[int, int, int, int, str]) -> str:
    day, second, micros, digits, tz = spec
    when = datetime(2026, 11, 23, tzinfo=timezone.utc) + timedelta(days=day, seconds=second)
    frac = f"{micros:06d}000"[:digits]
    return when.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + tz


_LINES = st.one_of(
    st.builds(
        lambda spec, level, colour, message: (
            f"\x1b[2m{_stamp(spec)}\x1b[0m \x1b[{_COLOUR[level]}m{level:>5}\x1b[0m "
            f"\x1b[2magtmux::x\x1b[0m\x1b[2m:\x1b[0m {message}"
            if colour
            else f"{_stamp(spec)} {level:>5} agtmux::x: {message}"
        ),
        _STAMPS,
        st.sampled_from(list(_COLOUR)),
        st.booleans(),
        st.sampled_from(["source stale: a", "codex app-server reconnected", "hi", ""]),
    ),
    st.sampled_from(
        [
            "  caused by: boom",
            "",
            "2026-13-45T10:00:00Z  INFO agtmux: bad date",
            "2026-11-24T24:00:00Z  INFO agtmux: bad hour",
            "2026-11-24T10:00:60Z  INFO agtmux: leap second",
            "2026-11-24T10:00:00Z INFO",
            "2026-11-24T10:00:00Z  INFO\r",
            "\x1b[2m2026-11-24T10:00:00Z\x1b[0m \x1b[31mERROR\x1b[0m \x1b[2mx\x1b[0m: m",
        ]
    ),
)


def _scan(lines: list[str], since: datetime | None) -> tuple[Any, ...]:
    scanner = LogScanner(since)
    try:
        scanner.feed_all(lines)
        scanner.finish()
    except RecordError as exc:
        return ("error", str(exc))
    return (scanner.events, scanner.first, scanner.last, scanner.kept_text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_LINES, max_size=12), st.integers(0, 4 * 86_400))
def test_the_fast_path_agrees_with_the_slow_path(lines: list[str], offset: int) -> None:
    since = datetime(2026, 11, 23, tzinfo=timezone.utc) + timedelta(seconds=offset)
    windowed = _scan(lines, since)
    everything = _scan(lines, None)
    if everything[0] == "error":
        assert windowed == everything
        return
    events, first, last, _ = everything
    # the slow path, then the window applied afterwards
    kept = [e for e in events if e.at >= since]
    assert windowed[0] == kept
    assert windowed[1:3] == (first, last)


# --- JUnit -----------------------------------------------------------------------------------


def junit(body: str, root: str = "testsuites", attrs: str = "") -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}{attrs}>{body}</{root}>\n'.encode()


def test_a_testcase_repeated_500_times_counts_once() -> None:
    case = '<testcase classname="crate" name="t::one"/>'
    result = parse_junit(junit(f"<testsuite>{case * 500}</testsuite>"))
    assert (result.tests, result.passed) == (1, 1)


def test_a_repeated_testcase_that_failed_once_is_failing() -> None:
    ok = '<testcase classname="crate" name="t"/>'
    bad = '<testcase classname="crate" name="t"><failure message="boom"/></testcase>'
    result = parse_junit(junit(f"<testsuite>{ok * 3}{bad}{ok * 3}</testsuite>"))
    assert (result.tests, result.failures, result.passed) == (1, 1, 0)
    assert result.failing == ("crate::t",)


def test_same_name_in_two_classes_is_two_tests() -> None:
    cases = '<testcase classname="a" name="t"/><testcase classname="b" name="t"/>'
    assert parse_junit(junit(f"<testsuite>{cases}</testsuite>")).tests == 2


@pytest.mark.parametrize(
    "document",
    [
        # a default namespace on the whole report
        junit(
            '<testsuite><testcase classname="c" name="t"><failure/></testcase></testsuite>',
            attrs=' xmlns="urn:example:junit"',
        ),
        # a prefixed namespace on the failure only
        junit(
            '<testsuite><testcase classname="c" name="t"><j:failure xmlns:j="urn:j"/>'
            "</testcase></testsuite>"
        ),
        # one level deeper than a direct child
        junit(
            '<testsuite><testcase classname="c" name="t"><details><failure/></details>'
            "</testcase></testsuite>"
        ),
        # nested testsuites
        junit(
            '<testsuite name="outer"><testsuite name="inner"><testcase classname="c" name="t">'
            "<failure/></testcase></testsuite></testsuite>"
        ),
    ],
    ids=["default-namespace", "prefixed-namespace", "nested-deeper", "nested-suites"],
)
def test_failures_are_found_in_any_namespace_and_depth(document: bytes) -> None:
    result = parse_junit(document)
    assert (result.tests, result.failures) == (1, 1)
    assert result.failing == ("c::t",)


def test_namespaced_error_and_skipped_are_counted() -> None:
    result = parse_junit(
        junit(
            '<testsuite><testcase classname="c" name="e"><error/></testcase>'
            '<testcase classname="c" name="s"><skipped/></testcase>'
            '<testcase classname="c" name="p"/></testsuite>',
            attrs=' xmlns="urn:x"',
        )
    )
    assert (result.tests, result.errors, result.skipped, result.passed) == (3, 1, 1, 1)


def test_an_error_outside_every_testcase_fails_the_build() -> None:
    result = parse_junit(
        junit('<testsuite name="crate"><error message="did not compile"/></testsuite>')
    )
    assert (result.errors, result.passed) == (1, 0)
    assert result.failing == ("crate (error outside any testcase)",)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<testsuites><testsuite><testcase name="&lol9;"/></testsuite></testsuites>
"""


@pytest.mark.parametrize(
    "document",
    [
        BILLION_LAUGHS,
        b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<testsuites><testsuite><testcase name='&x;'/></testsuite></testsuites>",
        b'<!DOCTYPE testsuites SYSTEM "http://example.invalid/junit.dtd"><testsuites/>',
    ],
    ids=["billion-laughs", "external-entity", "external-dtd"],
)
def test_entity_expansion_and_dtds_are_refused(base: Path, document: bytes) -> None:
    path = private(base / "junit.xml", document)
    with pytest.raises(ProtocolError, match="DOCTYPE/ENTITY declarations are refused"):
        promptly(lambda: make_provider("build", path.as_uri()).build_result())


def _repeated_junit(path: Path, cases: int) -> int:
    failure = "<failure message='m'>" + "panic at src/lib.rs:1\n" * 20 + "</failure>"
    output = "<system-out>" + "ok\n" * 60 + "</system-out>"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write('<?xml version="1.0"?>\n<testsuites><testsuite name="crate">\n')
        for n in range(cases):
            body = failure if n == cases - 1 else output
            out.write(f'<testcase classname="crate" name="case_{n % 50}">{body}</testcase>\n')
        out.write("</testsuite></testsuites>\n")
    return path.stat().st_size


def test_a_large_junit_is_streamed_and_attached_by_digest(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = base / "junit.xml"
    size = _repeated_junit(path, 40_000)
    tracemalloc.start()
    try:
        evidence = make_provider("build", path.as_uri()).build_result()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    result = evidence.one()
    assert (result.tests, result.failures) == (50, 1)
    assert result.failing == ("crate::case_49",)
    # elements are dropped as they are counted: the tree never holds the report
    assert peak < size / 4, (peak, size)
    raw = evidence.raw_text()
    assert raw.startswith(f"<!-- {path}: {size} bytes, sha256 ")
    assert hashlib.sha256(path.read_bytes()).hexdigest() in raw


def test_a_small_junit_is_attached_as_read(base: Path) -> None:
    document = junit('<testsuite><testcase classname="c" name="t"/></testsuite>')
    path = private(base / "junit.xml", document)
    assert make_provider("build", path.as_uri()).build_result().raw_text() == document.decode()


def test_a_junit_larger_than_the_limit_is_refused(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "MAX_FILE_BYTES", 64)
    path = private(base / "junit.xml", junit("<testsuite>" + " " * 100 + "</testsuite>"))
    with pytest.raises(ProtocolError, match="more than the 64 read as evidence"):
        make_provider("build", path.as_uri()).build_result()


def test_junit_split_utf8_across_reads_is_fine(base: Path) -> None:
    # a multi-byte character straddling the parser's 16 KiB reads
    name = "é" * 20_000
    path = private(base / "junit.xml", junit(f'<testsuite><testcase name="{name}"/></testsuite>'))
    assert make_provider("build", path.as_uri()).build_result().one().tests == 1
