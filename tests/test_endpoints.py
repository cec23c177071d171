"""Endpoint URI parsing."""

from __future__ import annotations

import dataclasses

import pytest

from pytest_canarygate.endpoints import UNIX_PATH_MAX
from pytest_canarygate.endpoints import Endpoint
from pytest_canarygate.endpoints import parse_endpoint
from pytest_canarygate.errors import ConfigError


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("unix:///run/user/1000/agtmux/agtmuxd.sock", "/run/user/1000/agtmux/agtmuxd.sock"),
        ("unix:/tmp/agtmux-me/agtmuxd.sock", "/tmp/agtmux-me/agtmuxd.sock"),
        ("UNIX:///x/y.sock", "/x/y.sock"),
        ("unix:///x/with space.sock", "/x/with space.sock"),
    ],
)
def test_unix_forms(uri: str, path: str) -> None:
    ep = parse_endpoint(uri)
    assert ep == Endpoint("unix", path, uri)
    assert str(ep) == uri


def test_unix_path_at_the_limit_is_accepted() -> None:
    path = "/" + "a" * (UNIX_PATH_MAX - 1)
    assert parse_endpoint(f"unix://{path}").path == path


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("unix://", "empty socket path"),
        ("unix:", "empty socket path"),
        ("unix:relative/agtmuxd.sock", "is not absolute"),
        ("unix:agtmuxd.sock", "is not absolute"),
        ("unix://tmp/agtmuxd.sock", "three slashes"),
        ("unix:///tmp/dir/", "names a directory"),
        ("unix:///tmp/a\x00b", "NUL byte"),
        ("unix:///" + "a" * UNIX_PATH_MAX, f"AF_UNIX limit of {UNIX_PATH_MAX}"),
        ("tcp://127.0.0.1:9000", "unknown scheme 'tcp'"),
        ("/tmp/agtmuxd.sock", "no scheme"),
        ("", "no scheme"),
        ("http:///nohost", "has no host"),
        ("http://host:notaport/x", "not a valid URL"),
        ("file://otherhost/etc/x", "host 'otherhost'"),
        ("file:relative.json", "is not absolute"),
        ("file://", "empty file path"),
    ],
)
def test_rejected(uri: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_endpoint(uri)
    msg = str(info.value)
    assert why in msg
    assert repr(uri) in msg
    assert "unix:///absolute/path/to.sock" in msg  # says what is accepted
    assert isinstance(info.value, ValueError)


def test_non_string_rejected() -> None:
    with pytest.raises(ConfigError, match="must be a string"):
        parse_endpoint(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("http://127.0.0.1:8080/metrics", Endpoint("http", "/metrics", "", "127.0.0.1:8080")),
        ("https://example.org", Endpoint("https", "/", "", "example.org")),
        ("https://example.org/a/b?x=1", Endpoint("https", "/a/b", "", "example.org")),
        ("file:///var/log/agtmux.log", Endpoint("file", "/var/log/agtmux.log", "")),
        ("file:/var/log/agtmux.log", Endpoint("file", "/var/log/agtmux.log", "")),
        ("file://localhost/var/log/a%20b.log", Endpoint("file", "/var/log/a b.log", "")),
    ],
)
def test_other_schemes(uri: str, expected: Endpoint) -> None:
    assert parse_endpoint(uri) == dataclasses.replace(expected, uri=uri)


def test_endpoint_is_frozen() -> None:
    ep = parse_endpoint("unix:///x/y.sock")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ep.path = "/elsewhere"  # type: ignore[misc]


def test_credentials_are_refused_without_repeating_them() -> None:
    with pytest.raises(ConfigError) as info:
        parse_endpoint("https://operator:s3cret-token@ops.example/ops")
    assert "s3cret-token" not in str(info.value)
    assert "operator" not in str(info.value)
    assert "<credentials>@ops.example" in str(info.value)


@pytest.mark.parametrize(
    "uri", ["http://127.0.0.1:9464/ops", "http://[::1]:9/x", "http://localhost/x"]
)
def test_plain_http_only_to_loopback(uri: str) -> None:
    assert parse_endpoint(uri).scheme == "http"
