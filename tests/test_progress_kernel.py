"""Captured output in a real Jupyter kernel: what tasks print and log (IO tasks on the
runtime thread, CPU tasks defined in the notebook) goes to their records, never into a
cell, while the cells' own prints still show."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .test_notebook_kernel import Kernel

CELLS = {
    "define": """
import asyncio, json, logging, sys, time
from flowrra import Config, ExecutorConfig, Flowrra, current_task, progress

app = Flowrra(Config(executor=ExecutorConfig(io_workers=4, cpu_workers=1)))

@app.task()
async def talker(i, rounds):
    for r in range(rounds):
        print(f"talker {i} round {r}")
        print(f"talker {i} complains", file=sys.stderr)
        progress(r + 1, rounds)
        await asyncio.sleep(0.02)
    logging.getLogger("talker").warning(f"talker {i} warns")
    return current_task().attempt

@app.task(cpu_bound=True)
def cruncher(n):
    print(f"cruncher {n} prints")
    progress(n, n, "crunched")
    return n
""",
    "start": """
await app.start()
print(type(sys.stdout).__name__, type(sys.stdout.stream).__name__)
""",
    "submit": """
logging.basicConfig()  # a console handler on the root logger, as many notebooks have
ids = await app.starmap(talker, [(i, 25) for i in range(4)])
cpu_id = await app.submit(cruncher, 7)
print("submitted")
""",
    "meanwhile": """
time.sleep(1.0)  # the tasks print and log while this cell runs
print("only this cell's own line")
""",
    "collect": """
records = [await app.wait_for_result(i, 60) for i in ids + [cpu_id]]
print(json.dumps([[r.status.value, r.output, r.progress] for r in records]))
""",
    "stop": """
await app.stop()
print(type(sys.stdout).__name__)
""",
}


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    kernel = Kernel()
    try:
        for name, code in CELLS.items():
            kernel.run(name, code.strip())
        yield kernel
    finally:
        kernel.close()


def test_task_output_goes_to_records_not_cells(kernel: Kernel) -> None:
    for name in CELLS:
        assert kernel.replies[name]["status"] == "ok", (name, kernel.replies[name])
    assert kernel.stdout("start") == "TaskStream OutStream\n"
    assert kernel.stdout("submit") == "submitted\n"
    assert kernel.stdout("meanwhile") == "only this cell's own line\n"
    records = json.loads(kernel.stdout("collect"))
    for i, (status, output, done) in enumerate(records[:4]):
        assert status == "success" and done == 1.0
        lines = [f"talker {i} round {r}\ntalker {i} complains\n" for r in range(25)]
        assert output == "".join(lines) + f"WARNING:talker:talker {i} warns\n"
    assert records[4] == ["success", "cruncher 7 prints\n", 1.0]
    assert kernel.stdout("stop") == "OutStream\n"


def test_no_cell_shows_a_task_line(kernel: Kernel) -> None:
    streams = kernel.stderr(*CELLS) + "".join(
        kernel.stdout(name) for name in CELLS if name != "collect"
    )
    assert "talker" not in streams and "cruncher" not in streams, streams
