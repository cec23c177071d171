"""A real OpenSSH server on 127.0.0.1 for the ssh:// tests, with its own host and user keys.

``start_sshd`` (for a fixture to ``yield from``) starts ``/usr/sbin/sshd -D -e -f <its own
sshd_config>`` on a free port and writes a client config (``ssh -F``) that trusts exactly its
host key. Without the server binary the tests skip naming the package, unless
``CANARYGATE_REQUIRE_SSHD=1`` (CI) makes them fail.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")
#: Root's sshd refuses to start without its privilege separation folder (the package's
#: service creates it; a container that never started the service has none).
PRIVSEP_DIR = Path("/run/sshd")


@dataclass
class Sshd:
    """A running test sshd: where it listens and the client config that reaches it."""

    port: int
    client_config: Path
    process: subprocess.Popen[bytes]
    log: Path
    user: str

    def uri(self, socket_path: Path | str) -> str:
        """The ``ssh://`` endpoint of ``socket_path`` on this server."""
        return f"ssh://{self.user}@127.0.0.1:{self.port}{socket_path}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "canarygate-test", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def require_sshd() -> None:
    """Skip (or, under ``CANARYGATE_REQUIRE_SSHD=1``, fail) without an OpenSSH server."""
    if SSHD.exists():
        return
    why = f"{SSHD} is missing: install the openssh-server package"
    if os.environ.get("CANARYGATE_REQUIRE_SSHD") == "1":
        pytest.fail(why + " (CANARYGATE_REQUIRE_SSHD=1)")
    pytest.skip(why)


def ssh_processes(marker: str) -> list[int]:
    """Pids of running ``ssh`` clients whose command line holds ``marker`` (our config path)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"ssh" and marker.encode() in b" ".join(argv):
            if state != "Z":
                found.append(int(proc.name))
    return found


def start_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """(For a fixture to ``yield from``.) A private sshd on 127.0.0.1 accepting only a fresh
    user key, for the current user."""
    require_sshd()
    home = tmp_path_factory.mktemp("sshd")
    home.chmod(0o700)
    host_key, user_key = home / "host_key", home / "user_key"
    _keygen(host_key)
    _keygen(user_key)
    (home / "authorized_keys").write_text((home / "user_key.pub").read_text())
    if os.geteuid() == 0 and not PRIVSEP_DIR.exists():
        PRIVSEP_DIR.mkdir(mode=0o755)
    port = _free_port()
    (home / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {home / 'authorized_keys'}\nPidFile {home / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nAllowStreamLocalForwarding yes\nPermitRootLogin prohibit-password\n"
    )
    host_pub = (home / "host_key.pub").read_text().split()
    (home / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    client = home / "ssh_config"
    client.write_text(
        "Host *\n"
        f"  IdentityFile {user_key}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {home / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
        "  GlobalKnownHostsFile /dev/null\n  LogLevel ERROR\n"
    )
    log = home / "sshd.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(home / "sshd_config")],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    user = subprocess.run(["id", "-un"], capture_output=True, check=True, text=True).stdout.strip()
    server = Sshd(port, client, process, log, user)
    try:
        deadline = time.monotonic() + 10
        while b"Server listening" not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"sshd did not start: {log.read_text()}")
            time.sleep(0.02)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
