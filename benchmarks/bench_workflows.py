"""Workflow benchmarks (issue #15): what a chain and a group cost over plain submits.

(a) group: a group of N no-op steps run with ``await app.run(group(...))`` and awaited
    (``await handle.result()``, the list of results), against the same tasks as plain
    ``app.map`` then every ``wait_for_result``; target: the group at most 1.5x map.
(b) chain: a chain of M no-op steps (each gets the previous result), against the same M
    tasks submitted one after another, each awaited before the next is submitted (what a
    chain must do) and, for scale, against ``app.map`` of M tasks; the overhead per step
    is (chain - loop) / M.

Each runs in memory and on Redis (one process with its own workers: broker and backend
on 127.0.0.1:6379 under a fresh key prefix, deleted after). Every round makes fresh apps
and runs flowrra's workflow and its baselines alternately (the order rotating); medians
of the rounds are printed, with the ratio. Only the submit-to-last-result time is timed.

Usage: python benchmarks/bench_workflows.py [--only memory,redis] [--group N] [--chain M]
       [--rounds R]   (defaults: 10,000, 1,000, 5)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flowrra import (  # noqa: E402 - the repo root goes on sys.path first
    BackendConfig,
    BrokerConfig,
    Config,
    ExecutorConfig,
    Flowrra,
    call,
    chain,
    group,
)

URL = "redis://127.0.0.1:6379/0"
SECRET = "bench-secret-0123456789abcdef"
Timed = Callable[[Flowrra], Awaitable[float]]


async def step(x: int) -> int:
    return x + 1


def memory_app() -> tuple[Flowrra, str | None]:
    return Flowrra(Config(executor=ExecutorConfig(io_workers=4))), None


def redis_app() -> tuple[Flowrra, str | None]:
    prefix = f"bench-wf-{uuid.uuid4().hex[:8]}"
    app = Flowrra(
        Config(
            broker=BrokerConfig(URL, queue_key=f"{prefix}:queue"),
            backend=BackendConfig(f"{URL}?key_prefix={prefix}"),
            executor=ExecutorConfig(io_workers=16),
            secret_key=SECRET,
        )
    )
    return app, prefix


async def cleanup(prefix: str) -> None:
    client = aioredis.from_url(URL)
    keys = [k async for k in client.scan_iter(f"{prefix}*")]
    for start in range(0, len(keys), 1000):
        await client.delete(*keys[start : start + 1000])
    await client.aclose()


async def group_run(app: Flowrra, n: int) -> float:
    started = time.perf_counter()
    handle = await app.run(group(call(step, i) for i in range(n)))
    results = await handle.result()
    assert results == list(range(1, n + 1))
    return time.perf_counter() - started


async def map_run(app: Flowrra, n: int) -> float:
    started = time.perf_counter()
    ids = await app.map(step, range(n))
    results = [(await app.wait_for_result(i)).result for i in ids]
    assert results == list(range(1, n + 1))
    return time.perf_counter() - started


async def chain_run(app: Flowrra, m: int) -> float:
    started = time.perf_counter()
    handle = await app.run(chain(call(step, 0), *[step] * (m - 1)))
    assert await handle.result() == m
    return time.perf_counter() - started


async def loop_run(app: Flowrra, m: int) -> float:
    started = time.perf_counter()
    value = 0
    for _ in range(m):
        value = (await app.wait_for_result(await app.submit(step, value))).result
    assert value == m
    return time.perf_counter() - started


async def timed(make: Callable[[], tuple[Flowrra, str | None]], run: Timed) -> float:
    app, prefix = make()
    app.task(max_retries=0)(step)
    try:
        async with app:
            await app.wait_for_result(await app.submit(step, 0))  # warm: connections, shipping
            gc.collect()
            return await run(app)
    finally:
        if prefix is not None:
            await cleanup(prefix)


async def rounds(
    make: Callable[[], tuple[Flowrra, str | None]], runs: dict[str, Timed], count: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(count):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order
            times[name].append(await timed(make, runs[name]))
    return times


def show(label: str, times: dict[str, list[float]], count: int, per: str) -> None:
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"  {label}")
    for name, values in times.items():
        spread = f"{min(values):.3f}-{max(values):.3f} s"
        each = medians[name] / count * 1e6
        print(f"    {name:<26} {medians[name]:8.3f} s  ({each:7.1f} us/{per}; rounds {spread})")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="memory,redis")
    parser.add_argument("--group", type=int, default=10_000)
    parser.add_argument("--chain", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n, m = args.group, args.chain
    makers = {"memory": memory_app, "redis": redis_app}
    for where in args.only.split(","):
        make = makers[where]
        print(f"{where} (medians of {args.rounds} rounds)")
        g = await rounds(
            make,
            {
                f"group of {n:,}": lambda app: group_run(app, n),
                f"map of {n:,} + waits": lambda app: map_run(app, n),
            },
            args.rounds,
        )
        show(f"(a) group vs map, {n:,} no-op tasks", g, n, "task")
        ratio = statistics.median(g[f"group of {n:,}"]) / statistics.median(
            g[f"map of {n:,} + waits"]
        )
        verdict = "met" if ratio <= 1.5 else "NOT met"
        print(f"    group / map = {ratio:.2f}x (target <= 1.5x: {verdict})")
        c = await rounds(
            make,
            {
                f"chain of {m:,}": lambda app: chain_run(app, m),
                f"{m:,} submit+wait in turn": lambda app: loop_run(app, m),
                f"map of {m:,} + waits": lambda app: map_run(app, m),
            },
            args.rounds,
        )
        show(f"(b) chain vs one-by-one submits, {m:,} no-op steps", c, m, "step")
        chain_s = statistics.median(c[f"chain of {m:,}"])
        loop_s = statistics.median(c[f"{m:,} submit+wait in turn"])
        print(
            f"    chain overhead per step over submit+wait in turn: "
            f"{(chain_s - loop_s) / m * 1e6:+.1f} us ({chain_s / loop_s:.2f}x)"
        )


if __name__ == "__main__":
    asyncio.run(main())
