"""The operations contract over the daemon's JSON-RPC socket (``unix://``)."""

from __future__ import annotations

from pytest_canarygate.agtmux.providers.base import Source
from pytest_canarygate.agtmux.providers.base import Timeouts
from pytest_canarygate.agtmux.providers.ops import OpsProvider
from pytest_canarygate.agtmux.providers.ops import Params
from pytest_canarygate.errors import NotServed
from pytest_canarygate.errors import RemoteError
from pytest_canarygate.rpc import RpcClient

__all__ = ["METHOD_NOT_FOUND", "RpcOpsProvider"]

METHOD_NOT_FOUND = -32601


class RpcOpsProvider(OpsProvider):
    """Calls ``ops.*`` methods on a ``unix://`` endpoint, one connection per call.

    A daemon that does not serve a method answers -32601; that becomes :class:`NotServed`
    ("method <m> not served by <endpoint>"), so the gate reads UNOBSERVABLE and says which.
    """

    def __init__(self, uri: str, timeouts: Timeouts) -> None:
        super().__init__(uri)
        self._client = RpcClient(uri, connect_timeout=timeouts.connect, read_timeout=timeouts.read)

    def close(self) -> None:
        self._client.close()

    def call(self, method: str, params: Params) -> tuple[object, Source]:
        try:
            result = self._client.call(method, dict(params) if params else None)
        except RemoteError as exc:
            if exc.code == METHOD_NOT_FOUND:
                raise NotServed(
                    self.uri, method, f"method {method} not served by {self.uri}"
                ) from None
            raise
        return result, Source(self.uri, method)
