"""A script without ``if __name__ == "__main__":`` that uses CPU tasks: its worker
processes re-import it, and it would start flowrra again in each. They stop at once
instead, and the CPU tasks fail with one message that names the fix. Real scripts, real
process pools, under spawn and forkserver."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowrra import Config, ExecutorConfig, Flowrra
from flowrra.executors.main_guard import UNGUARDED_MAIN_EXIT

from . import cpu_tasks

FIX = "put the code that starts flowrra under `if __name__ == '__main__':`"

#: Makes the forkserver import ``__main__`` itself, as multiprocessing means it to (the
#: forkserver of Python 3.11 to 3.13 drops the script's path on the way, so there each
#: worker imports the script instead): then the forkserver is the process that refuses.
FORKSERVER_PRELOADS_MAIN = """
import multiprocessing.spawn as spawn

_preparation_data = spawn.get_preparation_data

def _with_main_path(name):
    data = _preparation_data(name)
    if "init_main_from_path" in data:
        data["main_path"] = data["init_main_from_path"]
    return data

spawn.get_preparation_data = _with_main_path
"""

SCRIPT = """
import asyncio
import os

from flowrra import Config, ExecutorConfig, Flowrra

app = Flowrra(
    Config(executor=ExecutorConfig(cpu_workers=2, start_method=os.environ["START_METHOD"]))
)

@app.task(cpu_bound=True)
def square(x):
    return x * x

@app.task()
async def echo(x):
    return x

async def main():
    async with app:
        ids = await app.map(square, range(3))
        for task_id in ids:
            record = await app.wait_for_result(task_id, timeout=60)
            print("CPU", record.status.value, record.result, record.error_type, record.retries)
            if record.error:
                print("ERROR", record.error)
        print("IO", (await app.wait_for_result(await app.submit(echo, 5), timeout=10)).result)
    print("main() finished")
"""

CASES = {
    "spawn": ("spawn", ""),
    "forkserver": ("forkserver", ""),
    "forkserver-preloading-main": ("forkserver", FORKSERVER_PRELOADS_MAIN),
}


def run_script(folder: Path, source: str, start_method: str) -> tuple[int, list[str]]:
    script = folder / "job.py"
    script.write_text(textwrap.dedent(source))
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder,
        env={**os.environ, "START_METHOD": start_method},
    )
    return done.returncode, (done.stdout + done.stderr).splitlines()


@pytest.mark.parametrize("case", CASES)
def test_an_unguarded_script_fails_its_cpu_tasks_with_one_message(
    tmp_path: Path, case: str
) -> None:
    start_method, prelude = CASES[case]
    code, lines = run_script(tmp_path, prelude + SCRIPT + "\nasyncio.run(main())\n", start_method)
    output = "\n".join(lines)
    assert code == 0, output
    assert len(lines) <= 10, output  # was 111 lines of bootstrap errors
    assert "bootstrapping" not in output and "RuntimeError" not in output, output
    assert lines.count("main() finished") == 1, output  # no worker re-ran main() to its end
    assert lines.count("CPU failed None FlowrraError 0") == 3, output  # at once, no retry
    errors = [line for line in lines if line.startswith("ERROR ")]
    assert len(errors) == 3 and len(set(errors)) == 1, output
    assert FIX in errors[0] and str(tmp_path / "job.py") in errors[0]
    assert "IO 5" in lines, output  # IO tasks are not affected
    logged = [line for line in lines if FIX in line and not line.startswith("ERROR ")]
    assert len(logged) == 1, output  # said once, by the process that started the pool


@pytest.mark.parametrize("case", CASES)
def test_a_guarded_script_is_unaffected(tmp_path: Path, case: str) -> None:
    start_method, prelude = CASES[case]
    source = prelude + SCRIPT + '\nif __name__ == "__main__":\n    asyncio.run(main())\n'
    code, lines = run_script(tmp_path, source, start_method)
    assert code == 0, lines
    assert [line for line in lines if line.startswith("CPU")] == [
        "CPU success 0 None 0",
        "CPU success 1 None 0",
        "CPU success 4 None 0",
    ], lines
    assert lines[-2:] == ["IO 5", "main() finished"], lines


def test_another_librarys_child_says_the_fix_in_one_line(tmp_path: Path) -> None:
    """A process flowrra did not start (the script's own) that re-imports the unguarded
    script stops at the same place, and says why itself."""
    source = """
    import asyncio
    import multiprocessing

    from flowrra import Flowrra

    app = Flowrra()

    async def main():
        async with app:
            pass

    asyncio.run(main())

    if __name__ == "__main__":
        child = multiprocessing.get_context("spawn").Process(target=print, args=("ran",))
        child.start()
        child.join()
        print("child exit", child.exitcode)
    """
    code, lines = run_script(tmp_path, source, "spawn")
    assert code == 0, lines
    assert lines[0] == f"child exit {UNGUARDED_MAIN_EXIT}", lines
    (said,) = lines[1:]
    assert said.startswith("flowrra: ") and FIX in said


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
async def test_a_task_that_exits_with_the_same_status_is_only_a_lost_worker(
    start_method: str,
) -> None:
    """The status means "no main guard" only from a process still starting up."""
    app = Flowrra(Config(executor=ExecutorConfig(cpu_workers=1, start_method=start_method)))
    app.task(name="exit_like_a_refusal", cpu_bound=True, max_retries=0)(
        lambda: os._exit(UNGUARDED_MAIN_EXIT)
    )
    app.task(cpu_bound=True, max_retries=0)(cpu_tasks.square)
    async with app:
        lost = await app.wait_for_result(await app.submit("exit_like_a_refusal"), timeout=60)
        after = await app.wait_for_result(await app.submit(cpu_tasks.square, 3), timeout=60)
    assert lost.error_type == "WorkerLostError", lost.error
    assert f"exited with code {UNGUARDED_MAIN_EXIT}" in (lost.error or "")
    assert after.result == 9  # the pool replaced its worker and goes on
