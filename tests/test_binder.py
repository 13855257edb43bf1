"""binder/start, as Binder runs it: it starts a Redis server of its own on 127.0.0.1,
exports its URL (and a secret key), then runs the command it wraps."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
START = ROOT / "binder" / "start"

PING = (
    "import os, redis; r = redis.Redis.from_url(os.environ['FLOWRRA_REDIS_URL']); "
    "print(r.ping(), os.environ['FLOWRRA_REDIS_URL'], os.environ['FLOWRRA_SECRET_KEY'])"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop_redis(port: int) -> None:
    """Stop the server binder/start started, by the pid in its pidfile (never by name)."""
    pidfile = Path(f"/tmp/flowrra-redis-{port}.pid")
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _listening(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    pidfile.unlink(missing_ok=True)
    Path(f"/tmp/flowrra-redis-{port}.log").unlink(missing_ok=True)
    assert not _listening(port), f"the Redis server on port {port} did not stop"


def _run(port: int, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
    unset = ("FLOWRRA_REDIS_URL", "FLOWRRA_SECRET_KEY")
    clean = {k: v for k, v in os.environ.items() if k not in unset}
    clean.update(FLOWRRA_BINDER_REDIS_PORT=str(port), **env)
    return subprocess.run(
        [str(START), *command], env=clean, capture_output=True, text=True, timeout=60
    )


def test_start_is_an_executable_bash_script() -> None:
    assert os.access(START, os.X_OK), "binder/start must be executable (chmod +x)"
    lines = START.read_text().splitlines()
    assert lines[0] == "#!/bin/bash"
    assert lines[-1] == 'exec "$@"'


@pytest.mark.skipif(
    shutil.which("redis-server") is None and os.environ.get("CI", "").lower() not in ("1", "true"),
    reason="redis-server is not installed (apt-get install redis-server)",
)
def test_start_runs_redis_then_the_command() -> None:
    port = _free_port()
    try:
        first = _run(port, sys.executable, "-c", PING)
        assert first.returncode == 0, first.stderr
        answer, url, secret = first.stdout.split()
        assert (answer, url) == ("True", f"redis://127.0.0.1:{port}/0")
        assert len(secret) == 64 and int(secret, 16) >= 0  # 32 random bytes, in hex
        assert _listening(port), "Redis should keep running in the background"

        # Again: the running server is used, a secret already set is kept, and the
        # command's exit status is binder/start's.
        again = _run(port, sys.executable, "-c", PING, FLOWRRA_SECRET_KEY="s" * 32)
        assert again.returncode == 0, again.stderr
        assert again.stdout.split() == ["True", f"redis://127.0.0.1:{port}/0", "s" * 32]
        assert _run(port, "sh", "-c", "exit 3").returncode == 3
    finally:
        _stop_redis(port)
