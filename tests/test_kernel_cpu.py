"""A CPU task defined in a real Jupyter kernel's ``__main__`` runs in the process pool."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

CELLS = [
    """
from flowrra import Config, ExecutorConfig, Flowrra
app = Flowrra(Config(executor=ExecutorConfig(cpu_workers=2, start_method=START)))
""",
    """
offset = 1000

@app.task(cpu_bound=True)
def from_a_cell(x):
    return x * x + offset

cube = app.task(name="cube", cpu_bound=True)(lambda x: x ** 3)
await app.start()
""",
    """
ids = await app.map(from_a_cell, range(4))
results = [(await app.wait_for_result(i, timeout=60)).result for i in ids]
cubes = [(await app.wait_for_result(await app.submit("cube", 3), timeout=60)).result]
await app.stop()
print(results, cubes)
""",
]


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_cell_functions_run_in_worker_processes(start_method: str) -> None:
    cells = [nbformat.v4.new_code_cell(f"START = {start_method!r}")]
    cells += [nbformat.v4.new_code_cell(source.strip()) for source in CELLS]
    notebook = nbformat.v4.new_notebook(cells=cells)
    NotebookClient(notebook, kernel_name="python3", timeout=120).execute()
    output = notebook.cells[-1].outputs[0]["text"]
    assert output.strip() == "[1000, 1001, 1004, 1009] [27]"
