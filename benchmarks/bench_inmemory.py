"""Benchmarks of flowrra's in-memory path: throughput, submit-to-result latency, sleep efficiency.

Usage: python benchmarks/bench_inmemory.py [--rounds N] [--quick]. Each measurement runs
``--rounds`` times interleaved with its baselines (order rotating), each on a fresh app or
pool; medians are reported. Only submit-to-last-result is timed, not app start and stop.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from flowrra import Config, ExecutorConfig, Flowrra

Job = Callable[[], Awaitable[Any]]
Wait = Callable[[Any], Awaitable[Any]] | None  # None: await the handle itself
Runner = Callable[[], Awaitable[tuple[float, ...]]]
Show = Callable[[tuple[float, ...]], str]
RawQueue = asyncio.Queue[tuple[asyncio.Future[Any], Job]]
HERE = Path(__file__).resolve().parent
SLEEP, SLEEP_TASKS, SLEEP_WORKERS = 0.05, 2_000, 100
IDEAL = SLEEP_TASKS / SLEEP_WORKERS * SLEEP
WARMUP = 200


async def noop() -> None:
    return None


async def nap() -> None:
    await asyncio.sleep(SLEEP)


async def raw_worker(queue: RawQueue) -> None:
    """A worker of the raw asyncio baseline: take (future, job), run it, set the result."""
    while True:
        fut, job = await queue.get()
        fut.set_result(await job())


async def raw_submit(queue: RawQueue, job: Job) -> asyncio.Future[Any]:
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    await queue.put((fut, job))
    return fut


async def timed_batch(submit: Job, wait: Wait, n: int) -> tuple[float]:
    """(seconds,) to submit ``n`` jobs one by one, then await every result."""
    gc.collect()
    t0 = time.perf_counter()
    handles = [await submit() for _ in range(n)]
    for handle in handles:
        await (handle if wait is None else wait(handle))
    return (time.perf_counter() - t0,)


async def timed_latency(submit: Job, wait: Wait, n: int) -> tuple[float, float]:
    """(p50, p99) in microseconds of submit-one-then-await-it; ``n`` samples after a warm-up."""
    samples: list[float] = []
    for i in range(WARMUP + n):
        if i == WARMUP:
            gc.collect()
            samples.clear()
        t0 = time.perf_counter()
        handle = await submit()
        await (handle if wait is None else wait(handle))
        samples.append((time.perf_counter() - t0) * 1e6)
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49], cuts[98]


async def run(target: str, latency: bool, n: int, workers: int, job: Job) -> tuple[float, ...]:
    """One measurement on a fresh flowrra app (``target="flowrra"``) or raw asyncio pool."""
    measure = timed_latency if latency else timed_batch
    if target == "raw":
        queue: RawQueue = asyncio.Queue()
        tasks = [asyncio.create_task(raw_worker(queue)) for _ in range(workers)]
        try:
            return await measure(partial(raw_submit, queue, job), None, n)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    executor = ExecutorConfig(io_workers=workers, cpu_workers=1, max_queue_size=max(n, 1_000))
    app = Flowrra(Config(executor=executor))
    app.task()(noop)
    app.task()(nap)
    async with app:
        return await measure(partial(app.submit, job), app.wait_for_result, n)


def python_018(quick: bool) -> str | None:
    """The 0.1.8 interpreter: $FLOWRRA_018_PYTHON, else benchmarks/.venv-018 (made if missing)."""
    if env := os.environ.get("FLOWRRA_018_PYTHON"):
        return env
    venv = HERE / ".venv-018"
    python = venv / "bin" / "python"
    if not python.exists():
        if quick:
            print(f"(--quick: skipping flowrra 0.1.8, there is no venv at {venv})")
            return None
        print(f"Creating {venv} and installing flowrra==0.1.8 into it ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "flowrra==0.1.8"]
        subprocess.run(pip, check=True, cwd=tempfile.gettempdir())
    return str(python)


async def run_018(python: str, n: int) -> tuple[float]:
    """(seconds,) for the same batch on flowrra 0.1.8: a copy of this script run by the 0.1.8
    python in a temp dir, with the repo in neither its cwd nor its sys.path (``-I``)."""
    with tempfile.TemporaryDirectory() as tmp:
        script = shutil.copy(__file__, tmp)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        cmd = [python, "-I", script, "--as-018", str(n)]
        out = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"The flowrra 0.1.8 run ({python}) failed:\n{out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["version"] == "0.1.8", result
    return (float(result["seconds"]),)


async def interleave(title: str, rounds: int, runners: dict[str, Runner], show: Show
                     ) -> dict[str, list[float]]:  # fmt: skip
    """Run each runner once a round (order rotating), print each round; return medians."""
    print(f"\n{title}", flush=True)
    names = list(runners)
    results: dict[str, list[tuple[float, ...]]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            results[name].append(await runners[name]())
        line = " | ".join(f"{name} {show(results[name][-1])}" for name in names)
        print(f"  round {r + 1}/{rounds}: {line}", flush=True)
    return {k: [statistics.median(col) for col in zip(*v, strict=True)] for k, v in results.items()}


def pair(latency: bool, n: int, workers: int, job: Job) -> dict[str, Runner]:
    """The flowrra runner and its raw asyncio baseline for one measurement."""
    return {name: partial(run, name, latency, n, workers, job) for name in ("flowrra", "raw")}


def row(label: str, value: str, target: str = "", ok: bool | None = None) -> tuple[str, ...]:
    return label, value, target, "" if ok is None else ("PASS" if ok else "FAIL")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per measurement (default 3)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--as-018", type=int, help=argparse.SUPPRESS)  # see run_018
    args = parser.parse_args()
    if args.as_018:
        import flowrra

        where = Path(flowrra.__file__).parent.parent
        assert flowrra.__version__ == "0.1.8", f"imported flowrra {flowrra.__version__}"
        assert where.name.endswith("-packages"), f"flowrra imported from {where}, not a venv"
        seconds = (await run("flowrra", False, args.as_018, 4, noop))[0]
        print(json.dumps({"version": flowrra.__version__, "seconds": seconds}))
        return
    rounds, (n, n_lat) = args.rounds, ((10_000, 500) if args.quick else (100_000, 5_000))
    py018 = python_018(args.quick)
    print(f"flowrra in-memory benchmarks, python {sys.version.split()[0]}, rounds={rounds}")

    runners = pair(False, n, 4, noop)
    if py018 is not None:
        runners["0.1.8"] = partial(run_018, py018, n)
    title = f"(a) throughput, {n:,} no-op tasks, io_workers=4 (target >= 100,000/s, >= 4x 0.1.8)"
    med = await interleave(title, rounds, runners, lambda t: f"{n / t[0]:,.0f} tasks/s")
    tput = {name: n / m[0] for name, m in med.items()}

    title = f"(b) latency, submit one no-op and await it, {n_lat:,} samples (target p50 < 50 us)"
    show_lat = "p50 {0[0]:.1f} us, p99 {0[1]:.1f} us".format
    lat = await interleave(title, rounds, pair(True, n_lat, 4, noop), show_lat)

    title = f"(c) sleep, {SLEEP_TASKS:,} x sleep({SLEEP}), io_workers={SLEEP_WORKERS}"
    title += f", ideal {IDEAL} s (target >= 97%)"
    runners = pair(False, SLEEP_TASKS, SLEEP_WORKERS, nap)
    med = await interleave(title, rounds, runners, lambda t: f"{t[0]:.3f} s ({IDEAL / t[0]:.1%})")
    slept = {name: m[0] for name, m in med.items()}

    f_tput, f_eff = tput["flowrra"], IDEAL / slept["flowrra"]
    rows = [
        row("measure", "median", "target"),
        row("throughput, flowrra", f"{f_tput:,.0f} tasks/s", ">= 100,000/s", f_tput >= 1e5),
        row("throughput, raw asyncio", f"{tput['raw']:,.0f} tasks/s"),
        row("flowrra / raw", f"{f_tput / tput['raw']:.2f}x"),
    ]
    if py018 is not None:
        ratio = f_tput / tput["0.1.8"]
        rows.append(row("throughput, flowrra 0.1.8", f"{tput['0.1.8']:,.0f} tasks/s"))
        rows.append(row("flowrra / 0.1.8", f"{ratio:.2f}x", ">= 4x", ratio >= 4))
    p50, p99 = lat["flowrra"]
    rows += [
        row("latency p50, flowrra", f"{p50:.1f} us", "< 50 us", p50 < 50),
        row("latency p99, flowrra", f"{p99:.1f} us"),
        row("latency p50 / p99, raw", "{:.1f} / {:.1f} us".format(*lat["raw"])),
        row("sleep time, flowrra", f"{slept['flowrra']:.3f} s", f"ideal {IDEAL} s"),
        row("sleep efficiency, flowrra", f"{f_eff:.1%}", ">= 97%", f_eff >= 0.97),
        row("sleep time / efficiency, raw", f"{slept['raw']:.3f} s / {IDEAL / slept['raw']:.1%}"),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print(f"\nSummary (medians of {rounds} rounds{', --quick sizes' if args.quick else ''})")
    for r in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


if __name__ == "__main__":
    asyncio.run(main())
