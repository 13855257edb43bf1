"""Reaching the real services the tests need: Redis, PostgreSQL, MariaDB.

On a developer's machine without a service, its tests skip with a message saying how
to run them; with ``CI=true`` a missing service fails the test instead.
"""

from __future__ import annotations

import os
import socket

import pytest

REDIS_URL = os.environ.get("FLOWRRA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "FLOWRRA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("FLOWRRA_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")

_HOW = {
    "Redis": "start it with: redis-server --port 6379 --save '' --daemonize yes",
    "PostgreSQL": "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) "
    "main start (trust auth, database 'test')",
    "MariaDB": "start it with: start-stop-daemon --start --background --exec /usr/sbin/mariadbd "
    "(root, empty password, database 'test')",
}


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require(name: str, host: str, port: int) -> None:
    """Skip (or, with CI=true, fail) the calling test when ``name`` is not listening."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}; {_HOW[name]}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true and {message}")
    pytest.skip(message)


def require_redis() -> None:
    """Redis on 127.0.0.1:6379."""
    require("Redis", "127.0.0.1", 6379)


def require_postgres() -> None:
    """PostgreSQL on 127.0.0.1:5432."""
    require("PostgreSQL", "127.0.0.1", 5432)


def require_mysql() -> None:
    """MariaDB/MySQL on 127.0.0.1:3306."""
    require("MariaDB", "127.0.0.1", 3306)
