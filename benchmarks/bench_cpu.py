"""CPU-task benchmarks (issue: CPU tasks from notebooks), printed in one run.

(a) 20,000 tiny tasks (x * x) on cpu_workers=2, submitted with app.map then awaited,
    beside a ProcessPoolExecutor(2) that submits one future per item; target >= 5,000
    tasks/s and a ratio >= 1.0.
(b) 8 heavy tasks of about 0.25 s of pure Python: 2 workers against 1; target >= 1.8x.
(c) A closure holding 1 MB called 1,000 times: bytes sent to the workers; target near
    2 MB (once per worker), not 1 GB.

Usage: python benchmarks/bench_cpu.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

from flowrra import Config, ExecutorConfig, Flowrra

TINY = 20_000


def square(x: int) -> int:
    return x * x


def spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def _calibrate(seconds: float = 0.25) -> int:
    n = 100_000
    while True:
        started = time.perf_counter()
        spin(n)
        took = time.perf_counter() - started
        if took > 0.05:
            return int(n * seconds / took)
        n *= 2


def _app(workers: int, queue: int = 1000) -> Flowrra:
    return Flowrra(Config(executor=ExecutorConfig(cpu_workers=workers, max_queue_size=queue)))


async def flowrra_tiny(n: int) -> float:
    app = _app(2, queue=n)
    app.task(cpu_bound=True)(square)
    async with app:
        await app.wait_for_result(await app.submit(square, 1))  # workers up
        started = time.perf_counter()
        ids = await app.map(square, range(n))
        for task_id in ids:
            await app.wait_for_result(task_id)
        return n / (time.perf_counter() - started)


def pool_tiny(n: int) -> float:
    with ProcessPoolExecutor(2) as pool:
        pool.submit(square, 1).result()
        started = time.perf_counter()
        futures = [pool.submit(square, i) for i in range(n)]
        for future in futures:
            future.result()
        return n / (time.perf_counter() - started)


async def heavy(workers: int, n: int) -> float:
    app = _app(workers)
    app.task(cpu_bound=True)(spin)
    async with app:
        await app.wait_for_result(await app.submit(spin, 1))
        started = time.perf_counter()
        ids = await app.map(spin, [n] * 8)
        for task_id in ids:
            await app.wait_for_result(task_id)
        return time.perf_counter() - started


async def closure_bytes(calls: int = 1000) -> int:
    blob = bytes(1_000_000)

    def uses_blob(i: int) -> int:
        return len(blob) + i

    app = _app(2)
    app.task(cpu_bound=True)(uses_blob)
    async with app:
        ids = await app.map(uses_blob, range(calls))
        for task_id in ids:
            await app.wait_for_result(task_id)
        return app.cpu_executor.pool.bytes_sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    ours, base, one, two = [], [], [], []
    n_spin = _calibrate()
    for _ in range(rounds):
        ours.append(asyncio.run(flowrra_tiny(TINY)))
        base.append(pool_tiny(TINY))
        one.append(asyncio.run(heavy(1, n_spin)))
        two.append(asyncio.run(heavy(2, n_spin)))
    sent = asyncio.run(closure_bytes())
    ours_m, base_m = statistics.median(ours), statistics.median(base)
    speedup = statistics.median(one) / statistics.median(two)
    print(f"(a) {TINY:,} tiny tasks, 2 workers ({rounds} rounds, medians)")
    print(f"    flowrra            {ours_m:10,.0f} tasks/s   (target >= 5,000)")
    print(f"    ProcessPoolExecutor {base_m:9,.0f} tasks/s")
    print(f"    ratio              {ours_m / base_m:10.2f}x       (target >= 1.0)")
    print("(b) 8 tasks of ~0.25 s of pure Python")
    print(f"    1 worker  {statistics.median(one):6.2f} s")
    print(
        f"    2 workers {statistics.median(two):6.2f} s   speed-up {speedup:.2f}x (target >= 1.8)"
    )
    print("(c) a closure holding 1 MB, called 1,000 times")
    print(f"    bytes sent to workers {sent / 1e6:6.2f} MB (target ~2 MB, naive: 1,000 MB)")


if __name__ == "__main__":
    main()
