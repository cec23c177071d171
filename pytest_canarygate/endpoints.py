"""Endpoint URIs: where evidence is read from.

Accepted forms:

- ``unix:///abs/path/to.sock`` (also ``unix:/abs/path/to.sock``): a daemon's JSON-RPC socket;
- ``http://host[:port]/path`` and ``https://...``: an HTTP endpoint;
- ``file:///abs/path`` (also ``file:/abs/path``, ``file://localhost/abs/path``): a local file;
- ``ssh://[user@]host[:port]/abs/path/to.sock``: a daemon's socket on another machine, reached
  through the system's OpenSSH client (:mod:`pytest_canarygate.ssh_forward`). Host, user and
  path are held to a narrow alphabet, since each becomes part of an ``ssh`` command line.

Only ``unix`` endpoints are spoken to by :class:`~pytest_canarygate.rpc.RpcClient`; the other
schemes are parsed here so every provider shares one notion of "endpoint". A config file's URIs
are parsed ``strict``: no credentials, query or fragment in any scheme, since every URI is
written into the signed evidence bundle.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import unquote
from urllib.parse import urlsplit

from pytest_canarygate.errors import ConfigError

__all__ = ["ACCEPTED_FORMS", "SCHEMES", "UNIX_PATH_MAX", "Endpoint", "parse_endpoint"]

SCHEMES = ("unix", "http", "https", "file", "ssh")
ACCEPTED_FORMS = (
    "unix:///absolute/path/to.sock, ssh://[user@]host[:port]/absolute/path/to.sock, "
    "http(s)://host[:port]/path or file:///absolute/path"
)

# A leading '-' would turn a host or user into an ssh option; the rest keeps them inert.
_SSH_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?")
_SSH_HOST_V6 = re.compile(r"\[[0-9A-Fa-f:.]{2,45}\]")
_SSH_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,31}")
# ':' would split an ``-L local:remote`` forward; a shell word needs no quoting with these.
_SSH_PATH = re.compile(r"/[A-Za-z0-9._/+@-]+")

# sun_path is 108 bytes on Linux and 104 on macOS/BSD, and must keep room for the NUL.
UNIX_PATH_MAX = (104 if sys.platform == "darwin" or "bsd" in sys.platform else 108) - 1


@dataclass(frozen=True)
class Endpoint:
    """A parsed endpoint URI.

    ``path`` is the socket path (unix), the URL path (http/https, "/" when empty) or the file
    path (file). ``netloc`` is the ``host[:port]`` of http/https URIs and empty otherwise.
    ``uri`` is the text as given; it is what error messages name. ``ssh`` endpoints also carry
    ``host`` (without IPv6 brackets), ``user`` and ``port`` (None: ssh's own default).
    """

    scheme: str
    path: str
    uri: str
    netloc: str = ""
    host: str = ""
    user: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        return self.uri


def parse_endpoint(uri: str, *, strict: bool = False) -> Endpoint:
    """Parse an endpoint URI; raise :class:`ConfigError` naming the bad value and the forms
    accepted.

    With ``strict`` (how a config file's URIs are read) a URI of any scheme that carries
    credentials, a query or a fragment is refused too, without repeating them: the URI is
    kept verbatim in the signed evidence bundle and printed in messages, so a token in it
    would leak."""
    if not isinstance(uri, str):
        raise ConfigError(f"endpoint must be a string, got {type(uri).__name__}: {uri!r}")
    if strict:
        _refuse_secrets(uri)
    scheme, sep, rest = uri.partition(":")
    scheme = scheme.lower()
    if not sep or not scheme:
        _reject(uri, "no scheme")
    if scheme == "unix":
        return Endpoint("unix", _unix_path(uri, rest), uri)
    if scheme == "file":
        return Endpoint("file", _file_path(uri, rest), uri)
    if scheme in ("http", "https"):
        return _http(uri, scheme)
    if scheme == "ssh":
        return _ssh(uri, rest)
    _reject(uri, f"unknown scheme {scheme!r}")


def _reject(uri: str, why: str) -> NoReturn:
    raise ConfigError(f"bad endpoint {uri!r}: {why}; accepted: {ACCEPTED_FORMS}")


def _refuse_secrets(uri: str) -> None:
    """Refuse userinfo (``user:password@``), a query (``?...``) or a fragment (``#...``),
    naming the URI with each of them replaced by a placeholder."""
    cut = min((i for i in (uri.find("?"), uri.find("#")) if i >= 0), default=len(uri))
    base = uri[:cut]
    scheme, sep, rest = base.partition(":")
    found = []
    if sep and rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        userinfo = authority.rsplit("@", 1)[0] if "@" in authority else ""
        if "@" in authority and (scheme.lower() != "ssh" or ":" in userinfo or "@" in userinfo):
            # ssh://user@host names an account, not a secret; a password never goes in a URI
            found.append("credentials")
            host = authority.rsplit("@", 1)[-1]
            base = f"{scheme}://<credentials>@{host}{slash}{path}"
    shown = base
    if "?" in uri[cut:]:
        found.append("a query ('?...')")
        shown += "?<query>"
    if "#" in uri[cut:]:
        found.append("a fragment ('#...')")
        shown += "#<fragment>"
    if not found:
        return
    verb = "end up" if len(found) > 1 or found[0] == "credentials" else "ends up"
    hint = (
        " (a file path holding '?' or '#': write them as %3F and %23)"
        if scheme.lower() == "file" and "credentials" not in found
        else ""
    )
    listed = " and ".join((", ".join(found[:-1]), found[-1])) if len(found) > 1 else found[0]
    _reject(
        shown,
        f"{listed} in a URI {verb} in the evidence bundle and the logs; "
        f"remove {'them' if len(found) > 1 or found[0] == 'credentials' else 'it'}{hint}",
    )


def _unix_path(uri: str, rest: str) -> str:
    if rest.startswith("//"):
        rest = rest[2:]
        if rest and not rest.startswith("/"):
            # unix://tmp/x.sock: "tmp" would be a host; say what was probably meant.
            _reject(uri, "unix:// must be followed by an absolute path (three slashes in all)")
    path = rest
    if not path:
        _reject(uri, "empty socket path")
    if "\x00" in path:
        _reject(uri, "socket path contains a NUL byte")
    if not path.startswith("/"):
        _reject(uri, f"socket path {path!r} is not absolute")
    if path.endswith("/"):
        _reject(uri, f"socket path {path!r} names a directory, not a socket")
    size = len(os.fsencode(path))
    if size > UNIX_PATH_MAX:
        _reject(
            uri,
            f"socket path is {size} bytes, longer than the AF_UNIX limit of {UNIX_PATH_MAX}",
        )
    return path


def _ssh(uri: str, rest: str) -> Endpoint:
    """``ssh://[user@]host[:port]/abs/path``: strict, since each part reaches ssh's argv."""
    if "?" in uri or "#" in uri:
        _reject(uri.split("?")[0].split("#")[0] + "?<...>", "no query or fragment in ssh:// URIs")
    if not rest.startswith("//"):
        _reject(uri, "ssh endpoints are written ssh://[user@]host[:port]/absolute/path")
    authority, slash, tail = rest[2:].partition("/")
    path = slash + tail
    user: str | None = None
    if "@" in authority:
        user, _, authority = authority.rpartition("@")
        if ":" in user:
            _reject(
                f"ssh://<credentials>@{authority}{path}",
                "a password in a URI ends up in the evidence bundle and the logs; use ssh "
                "keys or an agent",
            )
        if not _SSH_USER.fullmatch(user):
            _reject(uri, f"user {user!r} is not a plain account name (letters, digits, . _ -)")
    port: int | None = None
    host = authority
    if authority.startswith("["):
        host, _, after = authority.partition("]")
        host += "]"
        port_text = after[1:] if after.startswith(":") else None
        if after and port_text is None:
            _reject(uri, f"cannot read host {authority!r}")
        if not _SSH_HOST_V6.fullmatch(host):
            _reject(uri, f"host {host!r} is not an IPv6 address")
        host = host[1:-1]
    else:
        host, colon, port_text_or = authority.partition(":")
        port_text = port_text_or if colon else None
        if not _SSH_HOST.fullmatch(host):
            _reject(
                uri,
                f"host {host!r} is not a host name or address (letters, digits, '.', '-', "
                "not starting with '-')",
            )
    if port_text is not None:
        if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            _reject(uri, f"port {port_text!r} is not a number from 1 to 65535")
        port = int(port_text)
    if not path or path == "/":
        _reject(uri, "no socket path after the host")
    if not _SSH_PATH.fullmatch(path) or "//" in path or "/../" in path + "/":
        _reject(
            uri,
            f"socket path {path!r} must be absolute and plain (letters, digits, . _ / + @ -; "
            "no '..')",
        )
    if path.endswith("/"):
        _reject(uri, f"socket path {path!r} names a directory, not a socket")
    if len(os.fsencode(path)) > UNIX_PATH_MAX:
        _reject(uri, f"socket path is longer than the AF_UNIX limit of {UNIX_PATH_MAX}")
    return Endpoint("ssh", path, uri, netloc=authority, host=host, user=user, port=port)


def _file_path(uri: str, rest: str) -> str:
    if rest.startswith("//"):
        host, slash, tail = rest[2:].partition("/")
        if host not in ("", "localhost"):
            _reject(uri, f"file URIs name a local file; host {host!r} is not supported")
        rest = slash + tail
    path = unquote(rest)
    if not path:
        _reject(uri, "empty file path")
    if "\x00" in path:
        _reject(uri, "file path contains a NUL byte")
    if not path.startswith("/"):
        _reject(uri, f"file path {path!r} is not absolute")
    return path


def _http(uri: str, scheme: str) -> Endpoint:
    try:
        parts = urlsplit(uri)
        _ = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError as exc:
        _reject(uri, f"not a valid URL ({exc})")
    if not parts.hostname:
        _reject(uri, f"{scheme} URL has no host")
    if parts.username is not None or parts.password is not None:
        # The URI is kept verbatim in the signed evidence and printed in messages.
        _reject(
            uri.replace(parts.netloc, "<credentials>@" + parts.netloc.rsplit("@", 1)[-1]),
            "credentials in a URI end up in the evidence bundle and the logs; remove them",
        )
    if scheme == "http" and not _is_loopback(parts.hostname):
        _reject(
            uri,
            f"plain http to {parts.hostname} could be forged on the way; use https://, "
            "or http:// only to a loopback address",
        )
    return Endpoint(scheme, parts.path or "/", uri, netloc=parts.netloc)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
