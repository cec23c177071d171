"""The simulated deployment's operations over HTTP: ``GET /ops/<name>`` answers ``ops.<name>``.

Run by the launcher as ``python -m pytest_canarygate.agtmux.sim.http_server --fd N --scenario NAME
[--phase PHASE] --anchor-ms MS``, on a listening TCP socket the launcher bound (127.0.0.1, an
ephemeral port) and handed over as file descriptor N, so the port is known before the server
starts. A served method answers 200 with its JSON result (``since_ms`` as a query parameter);
any other path, or a method the deployment does not serve, 404. The server stops like a daemon:
on SIGTERM, SIGINT or EOF on its stdin (the launcher has gone).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs
from urllib.parse import urlsplit

from pytest_canarygate.agtmux.sim.clock import NS_PER_MS
from pytest_canarygate.agtmux.sim.clock import anchor_ms_now
from pytest_canarygate.agtmux.sim.clock import wall_ns
from pytest_canarygate.agtmux.sim.ops_answers import OpsModel
from pytest_canarygate.agtmux.sim.ops_answers import operations_model
from pytest_canarygate.agtmux.sim.process import Log
from pytest_canarygate.agtmux.sim.process import StopRequest
from pytest_canarygate.agtmux.sim.process import add_child_arguments
from pytest_canarygate.agtmux.sim.process import child_logger
from pytest_canarygate.agtmux.sim.process import load_child_scenario
from pytest_canarygate.agtmux.sim.process import serve_until_stopped
from pytest_canarygate.errors import ConfigError

__all__ = ["BASE_PATH", "NAME", "main"]

BASE_PATH = "/ops"
"""The base path: ``ops.alert_ledger`` is served at ``<base URL>/alert_ledger``."""
NAME = "ops-http"
"""How the launcher and the logs name this process."""


class _Handler(BaseHTTPRequestHandler):
    server: _OpsServer

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        name = parts.path.removeprefix(f"{BASE_PATH}/")
        params = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        try:
            if name == parts.path or "/" in name:
                raise KeyError(name)
            result = self.server.model.answer(f"ops.{name}", params, wall_ns() // NS_PER_MS)
        except KeyError:
            self._send(404, {"error": f"not served: {parts.path}"})
            return
        self._send(200, result)

    def _send(self, status: int, document: object) -> None:
        body = json.dumps(document, sort_keys=True).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        self.server.log(format % args)


class _OpsServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, listening: socket.socket, model: OpsModel, log: Log) -> None:
        host, port = listening.getsockname()[:2]
        super().__init__((host, port), _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = listening  # already bound and listening: the launcher did both
        self.server_name, self.server_port = host, port
        self.base_url = f"http://{host}:{port}{BASE_PATH}"
        self.model = model
        self.log = log


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_canarygate.agtmux.sim.http_server",
        description="The operations HTTP server of a simulated v5 deployment.",
    )
    parser.add_argument(
        "--fd", required=True, type=int, help="file descriptor of the listening TCP socket"
    )
    add_child_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the scenario's operations until SIGTERM/SIGINT or EOF on a piped stdin."""
    args = _parser().parse_args(argv)
    log = child_logger(NAME)
    try:
        anchor_ms = anchor_ms_now() if args.anchor_ms is None else args.anchor_ms
        scenario = load_child_scenario(args)
        model = operations_model(scenario, phase=args.phase, anchor_ms=anchor_ms)
    except ConfigError as exc:
        log(f"ERROR {exc}")
        return 2
    if model is None:
        log(f"ERROR scenario {scenario.name} has no [operations] to serve")
        return 2
    stop = StopRequest(log)
    server = _OpsServer(socket.socket(fileno=args.fd), model, log)
    log(f"serving the operations of scenario {scenario.name} at {server.base_url}")
    serve_until_stopped(server, stop)
    log("server stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
