"""A redis-server of the test's own on a free port, stopped by its pid (never by name):
an ACL user, a unix socket, TLS with a test CA, and faults (kill -9, restart, DEBUG SLEEP)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .services import require


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server of the test's own: an ACL user, a unix socket, an append-only file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.tls_port = _free_port()
        self.socket = folder / "redis.sock"
        self.pidfile = folder / "redis.pid"
        self.ca_file = folder / "ca.pem"

    def _tls_options(self) -> list[str]:
        """A test CA (trustme) and a certificate for 127.0.0.1 signed by it."""
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        ca.cert_pem.write_to_path(str(self.ca_file))
        cert.private_key_pem.write_to_path(str(self.folder / "server.key"))
        cert.cert_chain_pems[0].write_to_path(str(self.folder / "server.pem"))
        return [
            "--tls-port", str(self.tls_port),
            "--tls-cert-file", str(self.folder / "server.pem"),
            "--tls-key-file", str(self.folder / "server.key"),
            "--tls-ca-cert-file", str(self.ca_file),
            "--tls-auth-clients", "no",
        ]  # fmt: skip

    def start(self) -> None:
        subprocess.run(
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--unixsocket", str(self.socket), "--daemonize", "yes",
                "--pidfile", str(self.pidfile), "--dir", str(self.folder),
                "--save", "", "--appendonly", "yes", "--appendfsync", "always",
                "--user", "default", "on", "nopass", "~*", "&*", "+@all",
                "--user", "alice", "on", ">wonderland-pw", "~*", "&*", "+@all",
                "--enable-debug-command", "local",
                *self._tls_options(),
            ],
            check=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not self._answers():
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def url(self, db: int = 0) -> str:
        """The TCP URL of this server, as the ACL user alice."""
        return f"redis://alice:wonderland-pw@127.0.0.1:{self.port}/{db}"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server by its pid (``signal.SIGKILL`` for kill -9)."""
        if not self.pidfile.exists():
            return
        pid = int(self.pidfile.read_text())
        os.kill(pid, sig)  # by its pid, never by name
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.pidfile.unlink(missing_ok=True)

    def pause(self, seconds: float) -> subprocess.Popen[bytes]:
        """Freeze the server for ``seconds`` (DEBUG SLEEP), from another process."""
        return subprocess.Popen(
            ["redis-cli", "-p", str(self.port), "--user", "alice", "--pass", "wonderland-pw",
             "--no-auth-warning", "DEBUG", "SLEEP", str(seconds)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip


def serve(tmp_path: Path) -> Iterator[RedisServer]:
    """Start a server for one test and stop it after (the ``server`` fixture)."""
    require("Redis", "127.0.0.1", 6379)  # the same binary: skip or fail like the others
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed; apt-get install redis-server")
    srv = RedisServer(tmp_path)
    srv.start()
    yield srv
    srv.stop()
