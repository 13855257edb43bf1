"""The app the dashboard benchmark's processes load (configured from the environment)."""

from __future__ import annotations

import os

from flowrra import BackendConfig, BrokerConfig, Config, ExecutorConfig, Flowrra

PREFIX = os.environ.get("FLOWRRA_BENCH_PREFIX", "flowrra-bench")
URL = os.environ.get("FLOWRRA_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


async def noop(i: int) -> int:
    """Does nothing; returns its argument."""
    return i


def make_app(prefix: str = PREFIX) -> Flowrra:
    """An app on Redis under ``prefix`` with the task ``noop``."""
    made = Flowrra(
        Config(
            broker=BrokerConfig(URL, queue_key=f"{prefix}:queue"),
            backend=BackendConfig(f"{URL}?key_prefix={prefix}"),
            executor=ExecutorConfig(io_workers=64),
            secret_key="bench-secret-0123456789",
        )
    )
    made.task(max_retries=0)(noop)
    return made


app = make_app()
