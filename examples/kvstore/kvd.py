"""A toy key-value daemon for the kvstore example: JSON-RPC 2.0 on a Unix socket.

    python kvd.py --socket /run/kv-old/kvd.sock --version 1.4.0 --data old.json

One request per connection, one newline-terminated JSON object each way. It serves two
read-only methods: ``kv.info`` (version and pid) and ``kv.keys`` (every key with its value
and namespace, from the JSON object in ``--data``). It stops on SIGTERM or when stdin closes.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path


def answer(request: dict[str, object], version: str, data: dict[str, str]) -> dict[str, object]:
    method = request.get("method")
    if method == "kv.info":
        result: object = {"version": version, "pid": os.getpid()}
    elif method == "kv.keys":
        result = [
            {"key": key, "namespace": key.split("/", 1)[0], "value": value}
            for key, value in sorted(data.items())
        ]
    else:
        error = {"code": -32601, "message": f"method not found: {method}"}
        return {"jsonrpc": "2.0", "id": request.get("id"), "error": error}
    return {"jsonrpc": "2.0", "id": request.get("id"), "result": result}


def serve(path: Path, version: str, data: dict[str, str]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    os.chmod(path, 0o600)
    server.listen()
    print("ready", flush=True)
    while True:
        connection, _ = server.accept()
        with connection:
            raw = b""
            while not raw.endswith(b"\n"):
                chunk = connection.recv(65536)
                if not chunk:
                    break
                raw += chunk
            reply = answer(json.loads(raw), version, data)
            connection.sendall(json.dumps(reply).encode() + b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args()
    data = json.loads(args.data.read_text())

    def stop(*_: object) -> None:
        args.socket.unlink(missing_ok=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    threading.Thread(target=lambda: (sys.stdin.read(), stop()), daemon=True).start()
    serve(args.socket, args.version, data)


if __name__ == "__main__":
    main()
