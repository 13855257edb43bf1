"""What an event subscriber costs: no-op IO tasks with and without one subscriber.

Usage: python benchmarks/bench_events.py [--tasks N] [--rounds N]. Each round runs a fresh
app without a subscriber and one with a subscriber that does nothing (alternating);
medians are printed with their ratio. With no subscriber an event costs one check; with
one, every change of every task builds its event dict (the record's ``to_dict``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time

from flowrra import Config, ExecutorConfig, Flowrra


async def noop() -> None:
    return None


async def rate(tasks: int, subscribed: bool) -> float:
    """No-op tasks/s, submitted one by one then each awaited, io_workers=4."""
    app = Flowrra(Config(executor=ExecutorConfig(io_workers=4, max_queue_size=tasks)))
    app.task()(noop)
    if subscribed:
        app.events.subscribe(lambda event: None)
    async with app:
        gc.collect()
        started = time.perf_counter()
        ids = [await app.submit(noop) for _ in range(tasks)]
        for task_id in ids:
            await app.wait_for_result(task_id)
        return tasks / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    plain: list[float] = []
    with_sub: list[float] = []
    for r in range(args.rounds):
        plain.append(await rate(args.tasks, False))
        with_sub.append(await rate(args.tasks, True))
        print(f"  round {r + 1}/{args.rounds}: {plain[-1]:,.0f} vs {with_sub[-1]:,.0f} tasks/s")
    a, b = statistics.median(plain), statistics.median(with_sub)
    print(f"{args.tasks:,} no-op tasks, medians of {args.rounds} rounds")
    print(f"  no subscriber        {a:10,.0f} tasks/s")
    print(f"  one no-op subscriber {b:10,.0f} tasks/s   ratio {b / a:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
