"""A scheduler process for the start-together test.

    python tests/scheduler_starter.py URL FD

Builds a scheduler on URL, prints ``ready`` and waits, on its event loop, until the file
descriptor FD (the read end of a pipe the test holds open) reaches end of file: the test
closes the write end once every process is ready, so all of them start at the same
moment. Then it starts the scheduler, adds a schedule and stops; exit status 0 means it
got through.
"""

from __future__ import annotations

import asyncio
import os
import sys

from flowrra.registry import TaskRegistry
from flowrra.scheduler import Scheduler


async def submit(task_name: str, args: tuple, kwargs: dict, **options: object) -> str:
    return "unused"


async def main(url: str, fd: int) -> None:
    registry = TaskRegistry()

    @registry.task()
    async def record(key: str) -> None: ...

    scheduler = Scheduler(url, registry, 5.0, submit=submit)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    go = loop.create_future()
    loop.add_reader(fd, go.set_result, None)
    print("ready", flush=True)
    await go
    loop.remove_reader(fd)
    await scheduler.start()
    await scheduler.schedule_interval("record", 60, (str(os.getpid()),))
    await scheduler.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
