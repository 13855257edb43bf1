"""What reporting progress and capturing output cost a task, and what the task context
costs every task.

Usage: python benchmarks/bench_progress.py [--rounds N] [--calls N] [--no-redis]

(a) one IO task calling ``progress(i, n)`` --calls times (default 100,000) against the
    same loop without the call, in memory; the overhead is the difference of the two
    tasks' run times (their records' durations), medians of rounds run alternately;
(b) the same in a CPU task (in a worker process);
(c) one IO task printing --calls short lines (captured into its record) against the
    same prints into an ``io.StringIO``;
(d) the same as (a) with Redis as broker and backend (127.0.0.1:6379, its own key
    prefix, removed after);
(e) 50,000 no-op IO tasks (io_workers=4) with the task context against a stand-in that
    does nothing, alternately: what the context costs every task, reporting or not.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import time
import uuid
from collections.abc import Callable
from contextlib import redirect_stdout
from typing import Any

import flowrra.executors.base as executor_base
from flowrra import BackendConfig, BrokerConfig, Config, ExecutorConfig, Flowrra, progress

REDIS = "redis://127.0.0.1:6379/0"
NOOP_TASKS = 50_000


async def with_progress(n: int) -> int:
    for i in range(n):
        progress(i + 1, n)
    return n


async def without_progress(n: int) -> int:
    total = 0
    for i in range(n):
        total += i + 1 - n  # about the same loop, without the call
    return n


def cpu_with_progress(n: int) -> int:
    for i in range(n):
        progress(i + 1, n)
    return n


def cpu_without_progress(n: int) -> int:
    total = 0
    for i in range(n):
        total += i + 1 - n
    return n


async def prints(n: int) -> int:
    for i in range(n):
        print("line", i)
    return n


async def prints_to_buffer(n: int) -> int:
    with redirect_stdout(io.StringIO()):
        for i in range(n):
            print("line", i)
    return n


async def noop() -> None:
    return None


def _app(redis_prefix: str | None = None) -> Flowrra:
    executor = ExecutorConfig(io_workers=4, cpu_workers=1)
    if redis_prefix is None:
        return Flowrra(Config(executor=executor))
    return Flowrra(
        Config(
            broker=BrokerConfig(REDIS, queue_key=f"{redis_prefix}:queue"),
            backend=BackendConfig(f"{REDIS}?key_prefix={redis_prefix}"),
            executor=executor,
        )
    )


async def run_times(
    app: Flowrra, pairs: list[tuple[Callable[..., Any], int]], rounds: int
) -> list[list[float]]:
    """Run each (task, n) once per round, alternately; their durations (seconds)."""
    times: list[list[float]] = [[] for _ in pairs]
    async with app:
        for task, _n in pairs:  # warm up: a CPU worker process starts with its first task
            await app.wait_for_result(await app.submit(task, 1), timeout=600)
        for _ in range(rounds):
            for index, (task, n) in enumerate(pairs):
                record = await app.wait_for_result(await app.submit(task, n), timeout=600)
                assert record.is_success, record.error
                assert record.duration is not None
                times[index].append(record.duration.total_seconds())
    return times


def _register(app: Flowrra) -> Flowrra:
    for task in (with_progress, without_progress, prints, prints_to_buffer, noop):
        app.task(max_retries=0)(task)
    for task in (cpu_with_progress, cpu_without_progress):
        app.task(cpu_bound=True, max_retries=0)(task)
    return app


def _overhead(label: str, calls: int, times: list[list[float]]) -> None:
    reported, baseline = statistics.median(times[0]), statistics.median(times[1])
    overhead = reported - baseline
    print(f"{label}")
    print(f"    with the calls    {reported:8.3f} s   (rounds {_spread(times[0])})")
    print(f"    baseline          {baseline:8.3f} s   (rounds {_spread(times[1])})")
    print(
        f"    overhead          {overhead:8.3f} s = {overhead / calls * 1e9:,.0f} ns a call; "
        f"ratio {reported / baseline:,.1f}x"
    )


def _spread(values: list[float]) -> str:
    return f"{min(values):.3f}-{max(values):.3f}"


class _NoContext:
    """A task context that does nothing (the baseline of (e))."""

    __slots__ = ()

    def __init__(self, task: Any, record: Any, reporter: Any) -> None:
        pass

    def enter(self) -> None:
        return None

    def leave(self, token: Any) -> None:
        return None


async def _noop_rate() -> float:
    app = _register(_app())
    async with app:
        started = time.perf_counter()
        ids = await app.starmap(noop, [()] * NOOP_TASKS)
        for task_id in ids:
            await app.wait_for_result(task_id)
        return NOOP_TASKS / (time.perf_counter() - started)


def context_cost(rounds: int) -> None:
    real = executor_base.TaskContext
    with_context, stand_in = [], []
    for _ in range(rounds):
        executor_base.TaskContext = real  # type: ignore[misc]
        with_context.append(asyncio.run(_noop_rate()))
        executor_base.TaskContext = _NoContext  # type: ignore[misc,assignment]
        stand_in.append(asyncio.run(_noop_rate()))
    executor_base.TaskContext = real  # type: ignore[misc]
    ours, base = statistics.median(with_context), statistics.median(stand_in)
    print(f"(e) {NOOP_TASKS:,} no-op IO tasks, io_workers=4 (medians of {rounds})")
    print(f"    with the task context   {ours:10,.0f} tasks/s")
    print(f"    stand-in (no context)   {base:10,.0f} tasks/s")
    print(f"    cost {1e6 / ours - 1e6 / base:+.2f} us a task ({ours / base:.3f}x)")


async def _clean_redis(prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS)
    keys = [k async for k in client.scan_iter(f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--no-redis", action="store_true")
    options = parser.parse_args()
    rounds, calls = options.rounds, options.calls
    print(f"{calls:,} calls in one task; medians of {rounds} rounds run alternately\n")
    app = _register(_app())
    times = asyncio.run(run_times(app, [(with_progress, calls), (without_progress, calls)], rounds))
    _overhead("(a) progress() in an IO task, in memory (target: overhead < 1 s)", calls, times)
    app = _register(_app())
    pairs = [(cpu_with_progress, calls), (cpu_without_progress, calls)]
    _overhead("(b) progress() in a CPU task", calls, asyncio.run(run_times(app, pairs, rounds)))
    app = _register(_app())
    pairs = [(prints, calls), (prints_to_buffer, calls)]
    times = asyncio.run(run_times(app, pairs, rounds))
    _overhead("(c) print() captured, against print() into a StringIO", calls, times)
    if not options.no_redis:
        prefix = f"flowrra-bench-{uuid.uuid4().hex[:8]}"
        try:
            app = _register(_app(prefix))
            pairs = [(with_progress, calls), (without_progress, calls)]
            times = asyncio.run(run_times(app, pairs, rounds))
            _overhead("(d) progress() in an IO task, on Redis", calls, times)
        finally:
            asyncio.run(_clean_redis(prefix))
    context_cost(rounds)


if __name__ == "__main__":
    main()
