"""No process flowrra starts outlives its parent, however the parent dies (issue 16).

Real kernels, real ``flowrra worker`` processes, real SIGKILLs; processes are counted with
psutil, and the tests kill only processes they started (and their children).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from jupyter_client.manager import KernelManager

from flowrra import TaskStatus
from flowrra.config import default_start_method

from .processes import descendants, describe, kill_all, wait_gone, wait_until
from .services import REDIS_URL

ROOT = Path(__file__).resolve().parents[1]
SECRET = "orphans-secret-0123456789abcdef"

BUSY_CELL = """
import asyncio, pathlib, time
from flowrra import Config, ExecutorConfig, Flowrra

app = Flowrra(Config(executor=ExecutorConfig(cpu_workers=3, start_method={method!r})))
here = pathlib.Path({folder!r})

@app.task(cpu_bound=True)
def sleeps(marker, seconds):
    pathlib.Path(marker).touch()
    time.sleep(seconds)  # releases the GIL

@app.task(cpu_bound=True)
def holds_the_gil(marker, n):
    pathlib.Path(marker).touch()
    return sum(range(n))  # one C loop: no Python code runs in this process meanwhile

await app.start()
ids = [await app.submit(sleeps, str(here / "a"), 300),
       await app.submit(holds_the_gil, str(here / "b"), 10**14)]
deadline = time.monotonic() + 60
while not ((here / "a").exists() and (here / "b").exists()):
    assert time.monotonic() < deadline, "the tasks did not start"
    await asyncio.sleep(0.05)
print("running")
"""


@pytest.fixture
def kernel() -> Iterator[KernelManager]:
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel()
    try:
        yield manager
    finally:
        if manager.is_alive():
            manager.shutdown_kernel(now=True)
        manager.cleanup_resources()


def run_cell(manager: KernelManager, code: str) -> str:
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        out: list[str] = []
        reply = client.execute_interactive(
            code, timeout=120, output_hook=lambda m: out.append(m["content"].get("text", ""))
        )
        assert reply["content"]["status"] == "ok", reply["content"]
        return "".join(out)
    finally:
        client.stop_channels()


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_a_killed_kernel_leaves_no_process_behind(
    kernel: KernelManager, method: str, tmp_path: Path
) -> None:
    cell = BUSY_CELL.format(method=method, folder=str(tmp_path))
    assert run_cell(kernel, cell).strip() == "running"
    kernel_pid = kernel.provisioner.process.pid  # type: ignore[union-attr]
    children = descendants(kernel_pid)
    assert len(children) >= 3, describe(children)  # three workers, and the helpers
    try:
        os.kill(kernel_pid, signal.SIGKILL)
        left = wait_gone(children)
        assert not left, f"still running after the kernel died:\n{describe(left)}"
    finally:
        kill_all(children)


# ------------------------------------------------------------------ flowrra worker
def start_worker(prefix: str) -> subprocess.Popen[str]:
    env = dict(os.environ, FLOWRRA_TEST_PREFIX=prefix, FLOWRRA_SECRET_KEY=SECRET)
    env["FLOWRRA_TEST_REDIS_URL"] = REDIS_URL
    command = [sys.executable, "-m", "flowrra", "worker", "--app", "tests.orphans_app:app"]
    return subprocess.Popen(
        [*command, "--lease", "2", "--cpu-workers", "2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def stop_worker(worker: subprocess.Popen[str]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


async def test_a_killed_worker_leaves_no_process_and_its_tasks_run_again(
    prefix: str, tmp_path: Path
) -> None:
    from tests.orphans_app import hold
    from tests.redis_app import make_app

    app = make_app(prefix, REDIS_URL, SECRET)
    app.task(cpu_bound=True)(hold)
    markers = [tmp_path / "one", tmp_path / "two"]
    await app.start(workers=False)
    first = start_worker(prefix)
    children: list[psutil.Process] = []
    try:
        ids = [await app.submit(hold, str(marker)) for marker in markers]
        await asyncio.to_thread(
            wait_until, lambda: all(m.exists() for m in markers), 60, "both tasks to start"
        )
        children = descendants(first.pid)
        assert len(children) >= 2, describe(children)
        first.send_signal(signal.SIGKILL)
        first.wait()
        left = await asyncio.to_thread(wait_gone, children)
        assert not left, f"still running after the worker died:\n{describe(left)}"
        second = start_worker(prefix)  # takes the tasks once their leases lapse
        try:
            records = [await app.wait_for_result(i, timeout=90) for i in ids]
        finally:
            stop_worker(second)
    finally:
        stop_worker(first)
        kill_all(children)
        await app.stop()
    assert [r.status for r in records] == [TaskStatus.SUCCESS] * 2
    assert [r.result for r in records] == ["again", "again"]


# ------------------------------------------------------------------ the pool itself
THREAD_SCRIPT = """
import asyncio, os, psutil
from flowrra.executors.pool import ProcessPool

async def start(pool):
    await pool.start()
    await asyncio.gather(*(pool.run(os.getpid, (), {}) for _ in range(4)))  # all at work
    return pool.pids

if __name__ == "__main__":
    pool = ProcessPool(2, "spawn")
    pids = asyncio.run(start(pool))  # its default executor's threads end with it
    gone, alive = psutil.wait_procs([psutil.Process(pid) for pid in pids], timeout=1.0)
    for proc in alive:
        proc.kill()
    print(len(gone), len(alive))
"""


def test_workers_outlive_the_thread_that_asked_for_them(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG fires when the *thread* that started a process ends: the pool
    starts processes from one long-lived launcher thread, never a passing one."""
    script = tmp_path / "threads.py"
    script.write_text(THREAD_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0 2"


FORK_WARNING_SCRIPT = """
import asyncio, threading, time, warnings
from flowrra.executors.pool import ProcessPool

async def main():
    pool = ProcessPool(2, {method!r})
    try:
        print(await pool.run(pow, (2, 10), {{}}))
    finally:
        await pool.close()

if __name__ == "__main__":
    stop = threading.Event()
    threading.Thread(target=stop.wait, daemon=True).start()  # threaded, like a kernel
    asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("method", "warns"),
    [("forkserver", False), ("spawn", False), ("fork", sys.version_info >= (3, 12))],
)
def test_no_fork_of_a_threaded_process_unless_asked(
    tmp_path: Path, method: str, warns: bool
) -> None:
    """Python 3.12 warns (DeprecationWarning) when a threaded process forks. flowrra's
    default start methods never do (the forkserver it preloads with flowrra starts no
    thread); ``fork``, chosen explicitly, does, and 3.12+ says so."""
    script = tmp_path / "pool.py"
    script.write_text(textwrap.dedent(FORK_WARNING_SCRIPT.format(method=method)))
    done = subprocess.run(
        [sys.executable, "-W", "always::DeprecationWarning", str(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1024"
    assert ("multi-threaded, use of fork()" in done.stderr) is warns, done.stderr


START_METHOD_SCRIPT = """
import asyncio, multiprocessing, os, psutil
from flowrra.executors.pool import ProcessPool

async def main():
    pool = ProcessPool(1, {method!r})
    try:
        await pool.start()
        # the worker has run something: its exec is done (start() returns once it is
        # launched, and a spawned child shows this script's command line until then)
        assert await pool.run(os.getpid, (), {{}}) == pool.pids[0]
        worker = psutil.Process(pool.pids[0])
        print(worker.ppid() == os.getpid(), "multiprocessing.forkserver" in " ".join(
            worker.cmdline()), "multiprocessing.spawn" in " ".join(worker.cmdline()))
    finally:
        await pool.close()

if __name__ == "__main__":
    multiprocessing.set_start_method({default!r}, force=True)  # what Python would pick
    asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("method", "default", "expected"),
    [
        ("forkserver", "fork", "False True False"),  # 3.14 made forkserver Linux's default
        ("spawn", "forkserver", "True False True"),
        ("fork", "forkserver", "True False False"),
    ],
)
def test_the_start_method_is_flowrras_not_pythons_default(
    tmp_path: Path, method: str, default: str, expected: str
) -> None:
    """Python 3.14 changed Linux's default start method from fork to forkserver: the
    pool never relies on the default, it starts workers the way it was told."""
    assert default_start_method() == ("forkserver" if sys.platform == "linux" else "spawn")
    script = tmp_path / "methods.py"
    script.write_text(START_METHOD_SCRIPT.format(method=method, default=default))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected
