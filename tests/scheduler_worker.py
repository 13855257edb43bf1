"""A scheduler process for the multi-process tests.

    python tests/scheduler_worker.py URL OUT [--until EPOCH] [--check-interval S]
    python tests/scheduler_worker.py URL OUT --die-after-submit [--lease S]

Runs an app whose task ``record(key)`` appends ``key`` to the file OUT, with a scheduler
on URL, until the wall-clock time ``--until``; prints ``ready`` once started. With
``--die-after-submit`` it has no app: its scheduler writes ``submitted <key>`` to OUT
and then kills its own process with SIGKILL, between submitting a run and recording it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from typing import Any

from flowrra import Flowrra
from flowrra.registry import TaskRegistry
from flowrra.scheduler import Scheduler


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


async def run(args: argparse.Namespace) -> None:
    app = Flowrra()

    @app.task()
    async def record(key: str) -> None:
        _append(args.out, key)

    app.create_scheduler(args.url, check_interval=args.check_interval)
    async with app:
        print("ready", flush=True)
        await asyncio.sleep(max(0.0, args.until - time.time()))


async def die_after_submit(args: argparse.Namespace) -> None:
    registry = TaskRegistry()

    @registry.task()
    async def record(key: str) -> None: ...

    async def submit(task_name: str, task_args: tuple, kwargs: dict, **options: Any) -> str:
        _append(args.out, f"submitted {task_args[0]}")
        os.kill(os.getpid(), signal.SIGKILL)
        return "never"

    scheduler = Scheduler(args.url, registry, 0.5, submit=submit, lease_seconds=args.lease)
    await scheduler.start()
    print("ready", flush=True)
    await asyncio.sleep(60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--until", type=float, default=0.0)
    parser.add_argument("--check-interval", type=float, default=0.5)
    parser.add_argument("--die-after-submit", action="store_true")
    parser.add_argument("--lease", type=float, default=30.0)
    args = parser.parse_args()
    asyncio.run(die_after_submit(args) if args.die_after_submit else run(args))
    sys.exit(0)


if __name__ == "__main__":
    main()
