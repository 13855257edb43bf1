"""Redis benchmarks (issue: Redis broker and backend), printed in one run.

(a) One process, broker and backend on Redis: 20,000 no-op IO tasks submitted in bulk
    (app.starmap) then awaited, end to end; target >= 5,000 tasks/s. Beside it a raw
    redis-py baseline doing the least a queue must: RPUSH the jobs in a pipeline, 4
    consumers LPOP 100 at a time and SET each result in a pipeline, then MGET them.
(b) Round trip of one task through a `flowrra worker` in another process: p50 < 2 ms,
    p99 < 10 ms.
(c) Bulk submit (app.starmap) of 20,000 tasks from a process that only submits
    (`start(workers=False)`, as a notebook driving workers elsewhere); target >= 50,000
    tasks/s. Beside it a raw redis-py baseline: the same number of pickled, signed
    payloads RPUSHed in one pipeline. The submit rate inside run (a), where the same
    process also runs the workers, is printed too.

(d) The loop a user writes first: one process (its own workers), broker and backend on
    Redis, 10,000 no-op IO tasks submitted one at a time (`await app.submit(noop)` in a for
    loop), then each awaited (`await app.wait_for_result(task_id)` in a loop); rate = N /
    time of both loops. Beside it flowrra 0.1.8 running the same loop with the same N
    (benchmarks/redis_loop_018.py run by $FLOWRRA_018_PYTHON); target >= 3x 0.1.8.
(e) 10,000 submits through `asyncio.gather(*(app.submit(noop) ...))`, then 10,000 concurrent
    `wait_for_result` through gather: errors are counted and printed (target 0), and the
    submit rate (target >= 20,000 tasks/s). Beside it the asyncio floor: a gather of
    10,000 coroutines that each await a future, all resolved by one callback (no Redis,
    no pickling): the least a gather of awaited calls costs on this machine.
(f) Redis cost per task of flowrra's part of (d): `INFO commandstats` read before and after
    it, calls per command per task (commands run inside scripts count too, so this is
    commands, not round trips), and round trips per task (target <= 3): requests written
    by redis-py (a pipeline is one), counted in this process while (d) runs; beside it
    the server's read events per task (`total_reads_processed`), a cross-check.

(d)-(f) run on a private redis-server started on a free port (stopped by its pid at the
end), so other processes' traffic does not count in (f): flowrra on database 0 under a
fresh key prefix per run, 0.1.8 on database 1 under a fresh queue key (its records are
at fixed keys); each run deletes its keys. Without redis-server on PATH they use
127.0.0.1:6379 (databases 0 and 1) and say so.

Usage: FLOWRRA_018_PYTHON=benchmarks/.venv-018/bin/python \
           python benchmarks/bench_redis.py [--only a,b,c,d,e,f] [--n N] [--samples 300]
           [--rounds 3]
--n sets the task count of every part (default 20,000 for (a) and (c), 10,000 for (d)-(f)).
Without FLOWRRA_018_PYTHON the 0.1.8 column of (d) is skipped; make that python with
`python3 -m venv benchmarks/.venv-018 && benchmarks/.venv-018/bin/pip install
"flowrra[redis]==0.1.8"`. Each measurement runs --rounds times (alternating with its
baseline); medians are shown. (a)-(c) need Redis on 127.0.0.1:6379; they use keys under a
random prefix and delete them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flowrra import BackendConfig, BrokerConfig, Config, Flowrra  # noqa: E402
from tests.redis_app import make_app  # noqa: E402 - the repo root goes on sys.path first

URL = "redis://127.0.0.1:6379/0"
SECRET = "bench-secret-0123456789abcdef"
HERE = Path(__file__).resolve().parent
LOOP_018 = HERE / "redis_loop_018.py"
WAIT_TIMEOUT = 120.0  # seconds a wait of (d) or (e) may take before it counts as an error


async def cleanup(prefix: str, url: str = URL) -> None:
    client = aioredis.from_url(url)
    keys = [k async for k in client.scan_iter(f"{prefix}*")]
    for start in range(0, len(keys), 1000):
        await client.delete(*keys[start : start + 1000])
    await client.aclose()


async def flowrra_end_to_end(n: int) -> tuple[float, float]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    app = make_app(prefix, URL, SECRET)
    try:
        async with app:
            started = time.perf_counter()
            ids = await app.starmap("nap", [(i, 0.0) for i in range(n)])
            submitted = time.perf_counter()
            for task_id in ids:
                await app.wait_for_result(task_id)
            done = time.perf_counter()
        return n / (done - started), n / (submitted - started)
    finally:
        await cleanup(prefix)


async def raw_baseline(n: int) -> float:
    prefix = f"bench-raw-{uuid.uuid4().hex[:8]}"
    client = aioredis.from_url(URL)
    queue = f"{prefix}:q"

    async def consumer() -> None:
        while True:
            jobs = await client.lpop(queue, 100)
            if not jobs:
                return
            pipe = client.pipeline(transaction=False)
            for job in jobs:
                pipe.set(f"{prefix}:r:{job.decode()}", b"null")
            await pipe.execute()

    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.rpush(queue, str(i))
    await pipe.execute()
    await asyncio.gather(*(consumer() for _ in range(4)))
    for start in range(0, n, 1000):
        await client.mget([f"{prefix}:r:{i}" for i in range(start, min(n, start + 1000))])
    rate = n / (time.perf_counter() - started)
    await client.aclose()
    await cleanup(prefix)
    return rate


async def bulk_submit(n: int) -> float:
    """Tasks/s of ``app.starmap`` of ``n`` tasks from an app without local workers."""
    prefix = f"bench-bulk-{uuid.uuid4().hex[:8]}"
    app = make_app(prefix, URL, SECRET)
    try:
        await app.start(workers=False)
        await app.starmap("nap", [(i, 0.0) for i in range(100)])  # connections, function
        started = time.perf_counter()
        await app.starmap("nap", [(i, 0.0) for i in range(n)])
        rate = n / (time.perf_counter() - started)
        await app.stop(wait=False)
        return rate
    finally:
        await cleanup(prefix)


async def raw_bulk(n: int) -> float:
    """Payloads/s of the least a bulk submit does: pickle and sign each, one pipeline."""
    import hmac
    import pickle

    prefix = f"bench-rawbulk-{uuid.uuid4().hex[:8]}"
    client = aioredis.from_url(URL)
    key = SECRET.encode()
    await client.ping()
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        payload = pickle.dumps(("nap", (i, 0.0), {}), protocol=pickle.HIGHEST_PROTOCOL)
        pipe.rpush(f"{prefix}:q", hmac.digest(key, payload, "sha256") + payload)
    await pipe.execute()
    rate = n / (time.perf_counter() - started)
    await client.aclose()
    await cleanup(prefix)
    return rate


async def round_trip(samples: int) -> list[float]:
    prefix = f"bench-rt-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, FLOWRRA_TEST_PREFIX=prefix, FLOWRRA_SECRET_KEY=SECRET)
    worker = subprocess.Popen(
        [sys.executable, "-m", "flowrra", "worker", "--app", "tests.redis_app:app",
         "--loglevel", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    app = make_app(prefix, URL, SECRET)
    times: list[float] = []
    try:
        await app.start(workers=False)
        await app.wait_for_result(await app.submit("nap", 0, 0.0), timeout=60)  # worker up
        for i in range(samples):
            started = time.perf_counter()
            await app.wait_for_result(await app.submit("nap", i, 0.0), timeout=10)
            times.append(time.perf_counter() - started)
        await app.stop()
    finally:
        worker.terminate()
        worker.wait(60)
        await cleanup(prefix)
    return times


# ------------------------------------------------------------------- (d), (e), (f)
class PrivateRedis:
    """A redis-server of our own on a free port, for (d)-(f); stopped by its pid."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.dir = ""

    def start(self) -> str | None:
        """Its base URL (no database number), or None without redis-server on PATH."""
        exe = shutil.which("redis-server")
        if exe is None:
            return None
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.dir = tempfile.mkdtemp(prefix="bench-redis-")
        pidfile = os.path.join(self.dir, "redis.pid")
        subprocess.run(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no", "--daemonize", "yes", "--pidfile", pidfile, "--dir", self.dir,
             "--logfile", os.path.join(self.dir, "redis.log")],
            check=True,
        )  # fmt: skip
        import redis

        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()
        while self.pid is None and time.monotonic() < deadline:
            try:
                self.pid = int(Path(pidfile).read_text())
            except (OSError, ValueError):
                time.sleep(0.05)
        return f"redis://127.0.0.1:{port}"

    def stop(self) -> None:
        if self.pid is not None:
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while os.path.exists(f"/proc/{self.pid}") and time.monotonic() < deadline:
                time.sleep(0.05)
            self.pid = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


class RequestCounter:
    """Counts requests written in this process (a pipeline is one) while ``on``: each
    is one round trip. Patches ``send_packed_command`` of redis-py's asyncio and
    synchronous connection classes (flowrra may use either) and the request of
    flowrra's script lines, which write to their socket themselves."""

    def __init__(self) -> None:
        self.on = False
        self.count = 0
        import redis.asyncio.connection as async_conn
        import redis.connection as sync_conn

        counter = self
        async_orig = async_conn.AbstractConnection.send_packed_command
        sync_orig = sync_conn.AbstractConnection.send_packed_command

        async def async_send(self, command, check_health=True):
            counter.count += counter.on
            return await async_orig(self, command, check_health)

        def sync_send(self, command, check_health=True):
            counter.count += counter.on
            return sync_orig(self, command, check_health)

        async_conn.AbstractConnection.send_packed_command = async_send
        sync_conn.AbstractConnection.send_packed_command = sync_send

        # flowrra's script lines write to the socket themselves when they read it with
        # hiredis (flowrra.redis_wire.ScriptLine): each of their requests counts too
        from flowrra.redis_wire import ScriptLine

        line_orig = ScriptLine._run

        async def line_run(self, connection, *parts):
            counter.count += counter.on and self._replies is not None
            return await line_orig(self, connection, *parts)

        ScriptLine._run = line_run

        # and the requests they send without waiting (the backend's result writes)
        send_orig = ScriptLine.send_nowait

        def line_send(self, args, on_reply):
            sent = send_orig(self, args, on_reply)
            counter.count += counter.on and sent
            return sent

        ScriptLine.send_nowait = line_send

    def start(self) -> None:
        self.count, self.on = 0, True

    def stop(self) -> int:
        self.on = False
        return self.count


async def noop() -> None:
    return None


def loop_app(prefix: str, url: str) -> Flowrra:
    """The app of (d) and (e): broker and backend on Redis under ``prefix``, defaults
    otherwise (4 IO workers, as 0.1.8), and ``noop``."""
    app = Flowrra(
        Config(
            broker=BrokerConfig(url, queue_key=f"{prefix}:queue"),
            backend=BackendConfig(f"{url}?key_prefix={prefix}"),
            secret_key=SECRET,
        )
    )
    app.task()(noop)
    return app


async def server_counts(client: aioredis.Redis) -> tuple[Counter, int]:
    """(calls per command, read events) of the server so far (``INFO``)."""
    stats = await client.info("commandstats")
    calls = Counter({k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()})
    return calls, (await client.info("stats"))["total_reads_processed"]


def error_key(phase: str, exc: BaseException) -> str:
    """``phase: Type: message``, task ids in the message replaced by ``<id>`` so that
    errors of one kind count together."""
    message = re.sub(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}",
                     "<id>", str(exc))  # fmt: skip
    return f"{phase}: {type(exc).__name__}: {message[:160]}"


async def user_loop(url: str, n: int, counter: RequestCounter) -> dict:
    """(d) and (f) for flowrra: the submit-one-at-a-time loop, then the wait loop."""
    prefix = f"bench-loop-{uuid.uuid4().hex[:8]}"
    app = loop_app(prefix, url)
    stats_client = aioredis.from_url(url)
    errors: Counter = Counter()
    ids: list[str] = []
    out: dict = {"errors": errors}
    try:
        await app.start()
        calls0, reads0 = await server_counts(stats_client)
        counter.start()
        started = time.perf_counter()
        for _ in range(n):
            try:
                ids.append(await app.submit(noop))
            except Exception as exc:
                errors[error_key("submit", exc)] += 1
        submitted = time.perf_counter()
        for task_id in ids:
            try:
                await app.wait_for_result(task_id, timeout=WAIT_TIMEOUT)
            except Exception as exc:
                errors[error_key("wait", exc)] += 1
        done = time.perf_counter()
        out["requests"] = counter.stop()
        calls1, reads1 = await server_counts(stats_client)
        calls = calls1 - calls0
        calls["info"] -= 2  # ours, between the two readings
        out.update(
            rate=n / (done - started),
            submit_rate=n / (submitted - started),
            calls=+calls,
            reads=reads1 - reads0 - 2,
        )
    except Exception as exc:
        errors[error_key("run", exc)] += 1
    finally:
        counter.stop()
        try:
            await app.stop()
        except Exception as exc:
            errors[error_key("stop", exc)] += 1
        await stats_client.aclose()
        await cleanup(prefix, url)
    return out


def loop_018(python: str, url: str, n: int) -> dict | None:
    """(d) on flowrra 0.1.8: a copy of redis_loop_018.py run by ``python`` in a temp dir
    (``-I``: the repo on neither its cwd nor its sys.path). None if it failed (said why)."""
    with tempfile.TemporaryDirectory() as tmp:
        script = shutil.copy(LOOP_018, tmp)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        cmd = [python, "-I", script, url, str(n)]
        out = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
    if out.returncode:
        print(f"  the flowrra 0.1.8 run ({python}) failed:\n{out.stderr[-3000:]}", flush=True)
        return None
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["version"] == "0.1.8", result
    result["rate"] = n / result["seconds"]
    return result


async def gather_burst(url: str, n: int) -> dict:
    """(e): ``n`` submits through one gather, then ``n`` concurrent waits through one."""
    prefix = f"bench-gather-{uuid.uuid4().hex[:8]}"
    app = loop_app(prefix, url)
    errors: Counter = Counter()
    out: dict = {"errors": errors, "submitted": 0}
    try:
        await app.start()
        started = time.perf_counter()
        got = await asyncio.gather(*(app.submit(noop) for _ in range(n)), return_exceptions=True)
        submit_s = time.perf_counter() - started
        ids = [x for x in got if isinstance(x, str)]
        for exc in got:
            if isinstance(exc, BaseException):
                errors[error_key("submit", exc)] += 1
        started = time.perf_counter()
        waits = (app.wait_for_result(task_id, timeout=WAIT_TIMEOUT) for task_id in ids)
        got = await asyncio.gather(*waits, return_exceptions=True)
        wait_s = time.perf_counter() - started
        for exc in got:
            if isinstance(exc, BaseException):
                errors[error_key("wait", exc)] += 1
        out.update(
            submitted=len(ids), submit_rate=len(ids) / submit_s, submit_s=submit_s, wait_s=wait_s
        )
    except Exception as exc:
        errors[error_key("run", exc)] += 1
    finally:
        try:
            await app.stop()
        except Exception as exc:
            errors[error_key("stop", exc)] += 1
        await cleanup(prefix, url)
    return out


async def gather_floor(n: int) -> float:
    """Calls/s of the least any asyncio library's ``gather`` of ``n`` awaited calls costs
    here: ``n`` coroutines, each awaiting a future of its own, all resolved by one
    callback (as one reply resolves a batch of submits), no Redis, no pickling."""
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[int]] = []

    async def call() -> int:
        future = loop.create_future()
        futures.append(future)
        return await future

    def reply() -> None:
        for future in futures:
            future.set_result(1)
        futures.clear()

    started = time.perf_counter()
    calls = asyncio.gather(*(call() for _ in range(n)))
    while len(futures) < n:
        await asyncio.sleep(0)
    reply()
    await calls
    return n / (time.perf_counter() - started)


def python_018() -> str | None:
    if python := os.environ.get("FLOWRRA_018_PYTHON"):
        return os.path.abspath(python)  # it runs in a temp dir; a venv's python: no resolve
    print(
        "FLOWRRA_018_PYTHON is not set: skipping the flowrra 0.1.8 column of (d). Make one:\n"
        "  python3 -m venv benchmarks/.venv-018 && "
        'benchmarks/.venv-018/bin/pip install "flowrra[redis]==0.1.8"\n'
        "  and run with FLOWRRA_018_PYTHON=benchmarks/.venv-018/bin/python",
        flush=True,
    )
    return None


def show_errors(errors: Counter, indent: str = "      ", kinds: int = 8) -> None:
    """The ``kinds`` commonest errors with their counts, and how many kinds are left."""
    for key, count in errors.most_common(kinds):
        print(f"{indent}{count:6,} x {key}")
    if len(errors) > kinds:
        rest = sum(errors.values()) - sum(c for _, c in errors.most_common(kinds))
        print(f"{indent}{rest:6,} x {len(errors) - kinds} other kinds of error")


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def run_loop_rounds(url: str, n: int, rounds: int, py018: str | None) -> dict:
    """(d) and (f): flowrra and 0.1.8 alternately (order rotating), ``rounds`` times."""
    counter = RequestCounter()
    runs: dict = {"flowrra": [], "0.1.8": []}
    for r in range(rounds):
        order = ["flowrra", "0.1.8"] if r % 2 == 0 else ["0.1.8", "flowrra"]
        for name in order:
            if name == "flowrra":
                runs[name].append(asyncio.run(user_loop(f"{url}/0", n, counter)))
            elif py018 is not None:
                runs[name].append(loop_018(py018, f"{url}/1", n))
        f = runs["flowrra"][-1]
        line = f"  (d) round {r + 1}/{rounds}: flowrra "
        line += (
            f"{f['rate']:,.0f} tasks/s (submit {f['submit_rate']:,.0f}/s)" if "rate" in f else "-"
        )
        old = runs["0.1.8"][-1] if runs["0.1.8"] else None
        if old:
            line += f", 0.1.8 {old['rate']:,.0f} tasks/s"
            if "rate" in f:
                line += f", ratio {f['rate'] / old['rate']:.2f}x"
        if "rate" in f:
            line += f"; (f) {f['requests'] / n:.2f} round trips/task"
            line += f", {sum(f['calls'].values()) / n:.2f} commands/task"
        errs = sum(f["errors"].values())
        print(line + (f"; {errs:,} errors" if errs else ""), flush=True)
        show_errors(f["errors"])
    return runs


def print_loop(runs: dict, n: int, rounds: int, show_d: bool, show_f: bool) -> None:
    med = statistics.median
    ok = [f for f in runs["flowrra"] if "rate" in f]
    old = [o for o in runs["0.1.8"] if o]
    errors = sum((f["errors"] for f in runs["flowrra"]), Counter())
    if show_d:
        print(f"(d) {n:,} no-op IO tasks, `await app.submit(...)` one at a time, then each awaited")
        rate = med(f["rate"] for f in ok) if ok else 0.0
        print(f"    flowrra            {rate:10,.0f} tasks/s  "
              f"(submit loop {med(f['submit_rate'] for f in ok) if ok else 0:,.0f}/s)")  # fmt: skip
        if old:
            old_rate = med(o["rate"] for o in old)
            lost = sum(o["lost_wakeups"] for o in old)
            old_errors = sum((Counter(o["errors"]) for o in old), Counter())
            print(f"    flowrra 0.1.8      {old_rate:10,.0f} tasks/s  "
                  f"({lost} lost wake-ups, {sum(old_errors.values())} errors)")  # fmt: skip
            show_errors(old_errors)
            ratio = rate / old_rate
            print(f"    ratio              {ratio:10.2f}x  (target >= 3: {met(ratio >= 3)})")
        else:
            print("    flowrra 0.1.8      skipped (no FLOWRRA_018_PYTHON or its run failed)")
        print(f"    errors             {sum(errors.values()):10,}  (all rounds)")
        show_errors(errors)
    if show_f and ok:
        trips = med(f["requests"] / n for f in ok)
        commands = med(sum(f["calls"].values()) / n for f in ok)
        reads = med(f["reads"] / n for f in ok)
        names = sorted(set().union(*(f["calls"] for f in ok)))
        per = {name: med(f["calls"][name] / n for f in ok) for name in names}
        per = {k: v for k, v in sorted(per.items(), key=lambda kv: -kv[1]) if v >= 0.0005}
        print(f"(f) Redis per task in flowrra's part of (d) (medians of {len(ok)} rounds)")
        print(f"    round trips per task  {trips:6.2f}  (target <= 3: {met(trips <= 3)}; "
              f"requests redis-py wrote, a pipeline is one)")  # fmt: skip
        print(f"    server read events    {reads:6.2f}  per task (cross-check)")
        print(f"    commands per task     {commands:6.2f}  (INFO commandstats, including "
              f"commands run inside scripts)")  # fmt: skip
        print("      " + ", ".join(f"{k} {v:.2f}" for k, v in per.items()))


def run_gather_rounds(url: str, n: int, rounds: int) -> list[dict]:
    runs = []
    for r in range(rounds):
        e = asyncio.run(gather_burst(f"{url}/0", n))
        e["floor"] = asyncio.run(gather_floor(n))
        runs.append(e)
        errs = sum(e["errors"].values())
        line = f"  (e) round {r + 1}/{rounds}: {e['submitted']:,}/{n:,} submitted"
        if "submit_rate" in e:
            line += (
                f" in {e['submit_s']:.2f} s ({e['submit_rate']:,.0f}/s), waits {e['wait_s']:.2f} s"
            )
        line += f"; asyncio floor {e['floor']:,.0f}/s"
        print(f"{line}; {errs:,} errors", flush=True)
        show_errors(e["errors"])
    return runs


def print_gather(runs: list[dict], n: int) -> None:
    ok = [e for e in runs if "submit_rate" in e]
    rate = statistics.median(e["submit_rate"] for e in ok) if ok else 0.0
    errors = sum((e["errors"] for e in runs), Counter())
    total = sum(errors.values())
    print(f"(e) {n:,} submits through asyncio.gather, then {n:,} concurrent waits")
    print(f"    submit rate        {rate:10,.0f} tasks/s  (target >= 20,000: {met(rate >= 20_000)};"
          " successful submits / time of the gather)")  # fmt: skip
    floor = statistics.median(e["floor"] for e in runs)
    print(f"    asyncio floor      {floor:10,.0f} calls/s  (gather of {n:,} bare awaits, "
          f"no Redis), ratio {rate / floor:.2f}x")  # fmt: skip
    if ok:
        print(f"    submit gather      {statistics.median(e['submit_s'] for e in ok):10.2f} s")
        print(f"    concurrent waits   {statistics.median(e['wait_s'] for e in ok):10.2f} s")
    print(f"    errors             {total:10,}  (all rounds; target 0: {met(total == 0)})")
    show_errors(errors)


def run_abc(parts: set[str], n: int, samples: int, rounds: int) -> None:
    """(a)-(c) as before, on 127.0.0.1:6379 (only the parts asked for)."""
    med = statistics.median
    runs: dict[str, list[float]] = {k: [] for k in ("e2e", "insubmit", "raw", "bulk", "rawbulk")}
    p50s: list[float] = []
    p99s: list[float] = []
    for r in range(rounds):
        line = []
        if "a" in parts or "c" in parts:
            end_to_end, in_run = asyncio.run(flowrra_end_to_end(n))
            runs["e2e"].append(end_to_end)
            runs["insubmit"].append(in_run)
        if "a" in parts:
            runs["raw"].append(asyncio.run(raw_baseline(n)))
            line.append(f"end to end {end_to_end:,.0f}/s (raw {runs['raw'][-1]:,.0f})")
        if "c" in parts:
            runs["bulk"].append(asyncio.run(bulk_submit(n)))
            runs["rawbulk"].append(asyncio.run(raw_bulk(n)))
        if "b" in parts:
            times = sorted(asyncio.run(round_trip(samples)))
            p50s.append(statistics.median(times) * 1e3)
            p99s.append(times[int(len(times) * 0.99) - 1] * 1e3)
            line.append(f"round trip p50 {p50s[-1]:.2f} ms p99 {p99s[-1]:.2f} ms")
        if "c" in parts:
            line.append(
                f"bulk submit {runs['bulk'][-1]:,.0f}/s (raw {runs['rawbulk'][-1]:,.0f}, "
                f"in run (a) {in_run:,.0f})"
            )
        print(f"  round {r + 1}/{rounds}: " + ", ".join(line), flush=True)
    print(f"Medians of {rounds} rounds")
    if "a" in parts:
        e2e, raw = med(runs["e2e"]), med(runs["raw"])
        print(f"(a) {n:,} no-op IO tasks through Redis, one process")
        print(f"    flowrra end to end {e2e:10,.0f} tasks/s  (target >= 5,000)")
        print(f"    raw redis-py       {raw:10,.0f} jobs/s")
        print(f"    ratio              {e2e / raw:10.2f}x")
    if "b" in parts:
        print(f"(b) round trip through a worker process ({samples} samples a round)")
        print(f"    p50 {med(p50s):6.2f} ms (target < 2)   p99 {med(p99s):6.2f} ms (target < 10)")
    if "c" in parts:
        bulk, rawbulk = med(runs["bulk"]), med(runs["rawbulk"])
        print(f"(c) bulk submit of {n:,} tasks, submit-only process")
        print(f"    flowrra app.starmap {bulk:10,.0f} tasks/s  (target >= 50,000)")
        print(f"    raw pickle+sign+RPUSH {rawbulk:10,.0f} payloads/s, ratio {bulk / rawbulk:.2f}x")
        print(f"    (inside run (a), workers in the same process: {med(runs['insubmit']):,.0f}/s)")


def run_def(parts: set[str], n: int, rounds: int) -> None:
    """(d)-(f) on a private redis-server (or 127.0.0.1:6379 without one)."""
    py018 = python_018() if "d" in parts else None
    server = PrivateRedis()
    try:
        url = server.start()
        if url is None:
            url = URL.rsplit("/", 1)[0]
            print(f"no redis-server on PATH: (d)-(f) use {url} (shared: (f) counts its traffic)")
        else:
            print(f"(d)-(f) on a private redis-server at {url} (pid {server.pid})", flush=True)
        loop = run_loop_rounds(url, n, rounds, py018) if parts & {"d", "f"} else None
        gather = run_gather_rounds(url, n, rounds) if "e" in parts else None
    finally:
        server.stop()
    print(f"Medians of {rounds} rounds")
    if loop is not None:
        print_loop(loop, n, rounds, "d" in parts, "f" in parts)
    if gather is not None:
        print_gather(gather, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="a,b,c,d,e,f", help="parts to run, e.g. d,e,f")
    parser.add_argument("--n", type=int, help="tasks per part (default 20,000 (a)-(c), 10,000)")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    if unknown := parts - set("abcdef"):
        parser.error(f"--only takes parts from a,b,c,d,e,f; got {', '.join(sorted(unknown))}")
    if parts & set("abc"):
        run_abc(parts, args.n or 20_000, args.samples, args.rounds)
    if parts & set("def"):
        run_def(parts, args.n or 10_000, args.rounds)


if __name__ == "__main__":
    main()
