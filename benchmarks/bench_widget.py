"""What the live task table costs: 100,000 no-op tasks with and without a TaskTable shown.

Usage: python benchmarks/bench_widget.py [--tasks N] [--rounds N] [--refresh-hz HZ]

As in a notebook, the app runs on flowrra's runtime thread and the table is fed there.
There is no browser: the table's comm records each message and serialises it to JSON, as
the kernel would before sending it. Each round runs both cases on fresh apps (order
rotating); medians and the ratio are printed. Target: ratio >= 0.90.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from typing import Any

import comm
from comm.base_comm import BaseComm

from flowrra import Config, ExecutorConfig, Flowrra, runtime

CHUNK = 1_000


class RecordingComm(BaseComm):
    """A comm that serialises what a widget sends and counts it."""

    messages = 0
    sent_bytes = 0

    def publish_msg(
        self,
        msg_type: str,
        data: Any = None,
        metadata: Any = None,
        buffers: Any = None,
        **keys: Any,
    ) -> None:
        RecordingComm.messages += 1
        RecordingComm.sent_bytes += len(json.dumps(data, default=str))


async def noop() -> None:
    return None


async def run_batch(app: Flowrra, n: int) -> float:
    """Seconds to submit ``n`` no-op tasks one by one, then await every result.

    Every ``CHUNK`` submits the loop is let go once, so workers and the table's refreshes
    run during submission too, as they do when tasks arrive over time.
    """
    gc.collect()
    t0 = time.perf_counter()
    ids = []
    for i in range(n):
        ids.append(await app.submit(noop))
        if i % CHUNK == 0:
            await asyncio.sleep(0)
    for task_id in ids:
        await app.wait_for_result(task_id)
    return time.perf_counter() - t0


def catch_up(table: Any, n: int, limit: float = 15.0) -> float:
    """Seconds until the table counts ``n`` successes (it must end exact)."""
    t0 = time.perf_counter()
    while table.counts.get("success") != n:
        if time.perf_counter() - t0 > limit:
            raise AssertionError(f"the table is stuck at {table.counts}")
        time.sleep(0.01)
    return time.perf_counter() - t0


def one_round(n: int, with_table: bool, refresh_hz: float) -> tuple[float, int]:
    """(seconds, widget messages) for one batch on a fresh app on the runtime loop."""
    from flowrra.notebook import TaskTable

    app = Flowrra(Config(executor=ExecutorConfig(io_workers=4, max_queue_size=n)))
    app.task()(noop)
    runtime.run_sync(app.start)
    table = TaskTable(app, refresh_hz=refresh_hz) if with_table else None
    before = RecordingComm.messages
    try:
        seconds = runtime.run_sync(run_batch, app, n)
        if table is not None:
            lag = catch_up(table, n)
            print(f"    (the table showed all {n:,} successes {lag:.2f} s after the last)")
    finally:
        if table is not None:
            table.close()
        runtime.run_sync(app.stop)
    return seconds, RecordingComm.messages - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--refresh-hz", type=float, default=4.0)
    args = parser.parse_args()
    comm.create_comm = RecordingComm  # widgets get a recording comm, as in a kernel
    n = args.tasks
    print(
        f"flowrra task table cost, {n:,} no-op tasks, io_workers=4, python "
        f"{sys.version.split()[0]}, refresh_hz={args.refresh_hz}, rounds={args.rounds}"
    )
    one_round(min(n, 2_000), True, args.refresh_hz)  # warm up imports and the runtime
    times: dict[str, list[float]] = {"without table": [], "with table": []}
    messages: list[int] = []
    for r in range(args.rounds):
        order = [False, True] if r % 2 == 0 else [True, False]
        for with_table in order:
            seconds, sent = one_round(n, with_table, args.refresh_hz)
            times["with table" if with_table else "without table"].append(seconds)
            if with_table:
                messages.append(sent)
        line = " | ".join(f"{k} {n / v[-1]:,.0f} tasks/s" for k, v in times.items())
        print(f"  round {r + 1}/{args.rounds}: {line} | messages {messages[-1]}", flush=True)
    without = statistics.median(times["without table"])
    with_ = statistics.median(times["with table"])
    ratio = without / with_
    print(f"without table: {n / without:,.0f} tasks/s (median {without:.3f} s)")
    print(
        f"with table:    {n / with_:,.0f} tasks/s (median {with_:.3f} s), "
        f"{statistics.median(messages):.0f} widget messages"
    )
    print(f"ratio: {ratio:.3f} (target >= 0.90: {'met' if ratio >= 0.9 else 'NOT met'})")


if __name__ == "__main__":
    main()
