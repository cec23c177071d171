"""The operations contract over HTTP(S): ``GET <base>/<name>`` answers the method's result.

``<name>`` is the method without its ``ops.`` prefix (``ops.alert_ledger`` ->
``<base>/alert_ledger``); params go in the query string. Only JSON answers are accepted.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pytest_canarygate import strictjson
from pytest_canarygate._requires import require
from pytest_canarygate.agtmux.providers.base import Source
from pytest_canarygate.agtmux.providers.base import Timeouts
from pytest_canarygate.agtmux.providers.ops import OpsProvider
from pytest_canarygate.agtmux.providers.ops import Params
from pytest_canarygate.endpoints import parse_endpoint
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.errors import EndpointTimeout
from pytest_canarygate.errors import NotServed
from pytest_canarygate.errors import ProtocolError
from pytest_canarygate.errors import StrictJSONError
from pytest_canarygate.errors import TransportError

# requests (with urllib3 and http.client) is imported on the first read, not with the provider.
require("requests", "urllib3")

if TYPE_CHECKING:
    import requests

__all__ = ["MAX_BODY_BYTES", "HttpOpsProvider"]

MAX_BODY_BYTES = 16 * 1024 * 1024
NOT_SERVED_STATUS = (404, 410, 501)
_EXCERPT = 200


class HttpOpsProvider(OpsProvider):
    """Reads ``ops.*`` answers from an HTTP(S) base URL through one :class:`requests.Session`.

    Every request has a connect timeout and a read timeout (the longest wait for the next bytes);
    bodies over ``MAX_BODY_BYTES`` are refused. Redirects are not followed and proxy/netrc
    settings from the environment are ignored: the configured URL is the one read. 404/410/501
    mean the method is not served (:class:`NotServed`).
    """

    def __init__(self, uri: str, timeouts: Timeouts) -> None:
        super().__init__(uri)
        endpoint = parse_endpoint(uri)
        parts = urlsplit(uri)
        if endpoint.scheme not in ("http", "https") or parts.query or parts.fragment:
            raise ConfigError(f"bad HTTP base URL {uri!r}: expected http(s)://host[:port]/path")
        self._base = uri.rstrip("/")
        self._timeouts = timeouts
        self._session: requests.Session | None = None
        self._session_lock = threading.Lock()

    def _open_session(self) -> requests.Session:
        # Reads may overlap (an abandoned exchange keeps its thread): one session for them all.
        with self._session_lock:
            if self._session is None:
                import requests

                session = requests.Session()
                session.trust_env = False
                self._session = session
            return self._session

    def close(self) -> None:
        with self._session_lock:
            if self._session is not None:
                self._session.close()

    def url_for(self, method: str) -> str:
        """The URL that answers ``method``."""
        return f"{self._base}/{method.removeprefix('ops.')}"

    def call(self, method: str, params: Params) -> tuple[object, Source]:
        # requests' read timeout bounds each socket read, not the answer: a server trickling a
        # byte a second would never time out. One deadline covers the whole exchange.
        limit = self._timeouts.connect + self._timeouts.read
        done: list[tuple[object, Source]] = []
        failed: list[BaseException] = []

        def exchange() -> None:
            try:
                done.append(self._call(method, params))
            except BaseException as exc:  # handed back to the caller below
                failed.append(exc)

        worker = threading.Thread(target=exchange, name="canarygate-http", daemon=True)
        worker.start()
        worker.join(limit)
        if worker.is_alive():  # abandoned: a daemon thread, it cannot keep the process up
            raise EndpointTimeout(
                self.uri,
                method,
                f"GET {self.url_for(method)}: the whole answer did not arrive within {limit:g} s",
            )
        if failed:
            raise failed[0]
        return done[0]

    def _call(self, method: str, params: Params) -> tuple[object, Source]:
        session = self._open_session()
        import requests
        import urllib3.exceptions

        url = self.url_for(method)
        connect, read = self._timeouts.connect, self._timeouts.read
        try:
            with session.get(
                url,
                params=dict(params),
                timeout=(connect, read),
                stream=True,
                allow_redirects=False,
                headers={"Accept": "application/json"},
            ) as response:
                self._check_status(method, url, response)
                body = self._read_body(method, url, response)
        except requests.ConnectTimeout:
            raise EndpointTimeout(
                self.uri, method, f"GET {url}: connect timed out after {connect:g} s"
            ) from None
        except requests.ReadTimeout:
            raise self._read_timed_out(method, url) from None
        except requests.ConnectionError as exc:
            if any(isinstance(arg, urllib3.exceptions.ReadTimeoutError) for arg in exc.args):
                raise self._read_timed_out(method, url) from None
            raise TransportError(self.uri, method, f"GET {url}: cannot connect: {exc}") from None
        except requests.RequestException as exc:
            raise TransportError(self.uri, method, f"GET {url}: {exc}") from None
        return self._decode(method, url, body), Source(self.uri, f"GET {url}")

    def _read_timed_out(self, method: str, url: str) -> EndpointTimeout:
        return EndpointTimeout(
            self.uri, method, f"GET {url}: read timed out after {self._timeouts.read:g} s"
        )

    def _check_status(self, method: str, url: str, response: requests.Response) -> None:
        status = response.status_code
        if status in NOT_SERVED_STATUS:
            raise NotServed(
                self.uri, method, f"method {method} not served by {self.uri} (GET {url}: {status})"
            )
        if status != 200:
            reason = f"GET {url}: HTTP {status} {response.reason or ''}".rstrip()
            if response.is_redirect:
                reason += f" to {response.headers.get('Location')} (redirects are not followed)"
            raise TransportError(self.uri, method, reason)
        content_type = response.headers.get("Content-Type", "")
        media = content_type.split(";", 1)[0].strip().lower()
        if not (media == "application/json" or media.endswith("+json")):
            raise ProtocolError(
                self.uri, method, f"GET {url}: expected a JSON answer, got {content_type!r}"
            )

    def _read_body(self, method: str, url: str, response: requests.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(64 * 1024):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise ProtocolError(
                    self.uri, method, f"GET {url}: body larger than {MAX_BODY_BYTES} bytes"
                )
        return b"".join(chunks)

    def _decode(self, method: str, url: str, body: bytes) -> object:
        try:
            return strictjson.loads(body)
        except StrictJSONError as exc:
            # Strict: a key named twice in one object, NaN/Infinity or 1e999 are refused.
            why = "body is not JSON" if exc.syntax else "body is not strict JSON"
            excerpt = body[:_EXCERPT].decode("utf-8", "replace")
            raise ProtocolError(
                self.uri, method, f"GET {url}: {why} ({exc.reason}): {excerpt!r}"
            ) from None
