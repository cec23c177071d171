"""Exception tree for everything the engine reads from the outside world.

    CanarygateError
     +-- ConfigError                (bad config file, key or value; also a ValueError)
     +-- StrictJSONError            (text that is not strict JSON: bad syntax, a key twice in one
     |                               object, NaN/Infinity or a number out of range; also a
     |                               ValueError; providers turn it into a ProtocolError)
     +-- EndpointError              (anything about reaching or reading an endpoint)
          +-- UntrustedEndpointError (socket or its directory owned/writable by someone else)
          +-- TransportError         (connect refused, missing socket, I/O failure)
          |    +-- EndpointTimeout   (connect or read deadline passed)
          |    +-- EvidenceMissing   (a configured evidence file or directory does not exist)
          +-- NotServed              (no such method or HTTP path: the daemon says it does not
          |                           serve that evidence)
          +-- ProtocolError          (empty reply, not JSON, not a JSON-RPC 2.0 answer; malformed
          |                           evidence: a bad record, JSON line, TOML key, XML or log line)
          +-- RemoteError            (a JSON-RPC error object: .code and .message)

Every EndpointError names the endpoint and the method it was asked, so a message on its own
tells an operator where to look.
"""

from __future__ import annotations


class CanarygateError(Exception):
    """Root of every error raised by pytest-canarygate."""


class ConfigError(CanarygateError, ValueError):
    """The configuration (file, option or scenario) is wrong; the message names what and where."""


class StrictJSONError(CanarygateError, ValueError):
    """Text that :func:`pytest_canarygate.strictjson.loads` refuses: not JSON at all, an object
    naming one key twice, a non-finite number (NaN, Infinity, a float that overflows) or an
    integer too long to read. ``reason`` is one line without the text; ``key`` the duplicated
    key, ``path`` where in the document (``entries[3]``, "" for the top level) and ``pos`` the
    character offset, each when known."""

    def __init__(
        self,
        reason: str,
        *,
        key: str | None = None,
        path: str | None = None,
        pos: int | None = None,
        syntax: bool = False,
    ) -> None:
        self.reason = reason
        self.key = key
        self.path = path
        self.pos = pos
        #: True when the text is not JSON at all; False when it is JSON strict decoding refuses.
        self.syntax = syntax
        super().__init__(reason)


class EndpointError(CanarygateError):
    """Something went wrong talking to an endpoint."""

    def __init__(self, endpoint: str, method: str | None, reason: str) -> None:
        self.endpoint = endpoint
        self.method = method
        self.reason = reason
        where = f"{endpoint} {method}" if method else endpoint
        super().__init__(f"{where}: {reason}")


class UntrustedEndpointError(EndpointError):
    """The socket or its directory could be written by someone other than us; never connected."""


class TransportError(EndpointError):
    """Could not connect, or the connection broke."""


class EndpointTimeout(TransportError):
    """A connect or read deadline passed."""


class EvidenceMissing(TransportError):
    """A configured evidence file or directory does not exist. Unlike :class:`NotServed` this
    is no statement from the daemon: the config says the evidence is there and it is not (a
    typo, a rotated log, a deleted file), so the evidence is broken, never merely absent."""


class NotServed(EndpointError):
    """The endpoint is there but says it does not serve what was asked: a JSON-RPC method
    answered -32601, an HTTP 404. The message names it."""


class ProtocolError(EndpointError):
    """The endpoint answered something malformed: not a well-formed JSON-RPC 2.0 response, or
    evidence that does not match its documented shape (the message names the file and line, or
    the key)."""


class RemoteError(EndpointError):
    """The endpoint answered with a JSON-RPC error object."""

    def __init__(self, endpoint: str, method: str | None, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(endpoint, method, f"error {code}: {message}")
