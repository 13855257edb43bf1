"""Redis faults on a server of our own (a free port, stopped by its pid): an ACL user, a
unix socket and TLS (``rediss://``) in the URL, and a restart in the middle of a run that
loses no task."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowrra import BrokerError, TaskStatus

from . import redis_app
from .services import require

SECRET = "fault-secret-0123456789abcdef"


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

    def stop(self) -> None:
        if not self.pidfile.exists():
            return
        pid = int(self.pidfile.read_text())
        os.kill(pid, signal.SIGTERM)  # by its pid, never by name
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    require("Redis", "127.0.0.1", 6379)  # the same binary: skip or fail like the others
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed; apt-get install redis-server")
    srv = RedisServer(tmp_path)
    srv.start()
    yield srv
    srv.stop()


async def test_acl_user_and_unix_socket_urls(server: RedisServer) -> None:
    for url in (
        f"redis://alice:wonderland-pw@127.0.0.1:{server.port}/0",
        f"unix://{server.socket}?db=0",
    ):
        app = redis_app.make_app("acl", url, SECRET)
        async with app:
            record = await app.wait_for_result(await app.submit("nap", 3, 0.0), timeout=10)
        assert record.result == 3, url


async def test_tls_url_with_a_trusted_ca_and_a_clear_error_without(server: RedisServer) -> None:
    url = f"rediss://alice:wonderland-pw@127.0.0.1:{server.tls_port}/0"
    app = redis_app.make_app("tls", f"{url}?ssl_ca_certs={server.ca_file}", SECRET)
    async with app:
        record = await app.wait_for_result(await app.submit("nap", 5, 0.0), timeout=10)
        listed = await app.list_results(status="success")
    assert record.result == 5 and [r.task_id for r in listed] == [record.task_id]
    # the server's certificate is not trusted without its CA: the error names the URL
    # with the password hidden
    untrusted = redis_app.make_app("tls", url, SECRET)
    with pytest.raises(BrokerError) as info:
        await untrusted.start()
    message = str(info.value)
    assert f"rediss://alice:***@127.0.0.1:{server.tls_port}/0" in message
    assert "wonderland-pw" not in message
    assert "add ?ssl_ca_certs=" in message  # says what to do


async def test_a_restart_mid_run_loses_no_task(server: RedisServer) -> None:
    url = f"redis://alice:wonderland-pw@127.0.0.1:{server.port}/0"
    app = redis_app.make_app("restart", url, SECRET)
    app.io_executor.broker.lease = 1.0  # type: ignore[union-attr]
    await app.start()
    ids = await app.starmap("nap", [(i, 0.02) for i in range(200)])
    while len(await app.list_results(status="success")) < 40:  # mid-run
        await asyncio.sleep(0.02)
    server.stop()
    await asyncio.sleep(0.5)  # the app meets a dead server for a while
    server.start()
    records = [await app.wait_for_result(i, timeout=120) for i in ids]
    await app.stop()
    assert [r.result for r in records] == list(range(200))
    assert {r.status for r in records} == {TaskStatus.SUCCESS}
