"""The example notebooks under pytest: nbval runs each in a kernel and compares its outputs
with the committed ones (``python -m pytest`` does it; see ``[tool.pytest.ini_options]``).

nbval does not compare a cell that was never run in the committed notebook; here such a
cell fails instead, so a notebook saved without its outputs cannot pass unchecked. Store
the outputs with ``jupyter nbconvert --to notebook --execute --inplace notebooks/NAME``.

The Redis notebook needs a Redis server at ``FLOWRRA_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``). Without one its cells are skipped with a message saying
how to start it, as the Redis tests are; with ``CI=true`` they run, and fail.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

#: Notebooks that need a Redis server.
REDIS_NOTEBOOKS = frozenset({"04-redis-and-workers.ipynb"})


def _redis_address() -> tuple[str, int]:
    url = urlsplit(os.environ.get("FLOWRRA_REDIS_URL", "redis://127.0.0.1:6379/0"))
    return url.hostname or "127.0.0.1", url.port or 6379


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the cells of the Redis notebook when Redis is down (unless CI=true)."""
    needing_redis = [item for item in items if item.path.name in REDIS_NOTEBOOKS]
    if not needing_redis or os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return
    host, port = _redis_address()
    if _reachable(host, port):
        return
    reason = (
        f"Redis is not reachable at {host}:{port} (FLOWRRA_REDIS_URL); start it with: "
        "redis-server --port 6379 --save '' --daemonize yes"
    )
    for item in needing_redis:
        item.add_marker(pytest.mark.skip(reason=reason))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail a notebook cell whose committed version was never run (it has no outputs)."""
    cell = getattr(item, "cell", None)
    if cell is not None and cell.get("cell_type") == "code" and cell.get("execution_count") is None:
        pytest.fail(
            f"{item.path.name}: a code cell was saved without being run, so its outputs "
            "cannot be checked; store them with: jupyter nbconvert --to notebook --execute "
            f"--inplace notebooks/{item.path.name}",
            pytrace=False,
        )
