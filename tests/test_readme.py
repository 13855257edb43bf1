"""Every Python block of README.md runs as written, so the README cannot drift from the code.

Each block is its own test case, named by its README heading and line
(``pytest tests/test_readme.py -k configuration``). How a block runs is set by an HTML
comment on the line right before its fence (tests/readme_blocks.py has the details)::

    (no marker), <!-- readme-test: script -->   a script, run with this Python in a fresh
                                                folder (`python block.py`)
    <!-- readme-test: notebook -->              cells of a new notebook in a real Jupyter
                                                kernel (top-level await, %magics)
    <!-- readme-test: redis -->                 a script, run while the `flowrra worker`
                                                command of the next ```bash block runs
                                                against the test Redis
    <!-- readme-test: continues -->             the same folder / kernel / worker as the
                                                runnable block before it
    <!-- readme-test: skip: REASON -->          not run; REASON says why
    ...; output: TEXT                           the output must contain TEXT

A block whose first line names a file (``# myproject/tasks.py``) is saved under that name
in its session's folder before the session runs. A block fails when a script exits
non-zero, a cell raises, a traceback or warning reaches stderr, or an expected output is
missing.

Scripts and kernels run without the caller's ``FLOWRRA_*`` variables, on the embedded
defaults a reader starts from. A redis session gets instead what its ```bash block
exports, pointed at the test Redis under a key prefix of its own (deleted after):
``FLOWRRA_BROKER_URL``, ``FLOWRRA_BROKER_QUEUE_KEY``, ``FLOWRRA_BACKEND_URL`` and a fresh
``FLOWRRA_SECRET_KEY``.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import tomllib
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from .readme_blocks import (
    Block,
    ReadmeMarkerError,
    parse_blocks,
    read_readme,
    sessions,
    worker_command,
)
from .services import REDIS_URL, require_redis

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = read_readme(ROOT / "README.md")
SESSIONS = sessions(BLOCKS)
SCRIPT_TIMEOUT = 120.0  # seconds; a README example takes a few
STDERR_ALARMS = ("Traceback (most recent call last)", "Warning:")


@dataclass
class Outcome:
    """What running one block gave: its output and what went wrong."""

    output: str = ""
    problems: list[str] = field(default_factory=list)

    def check(self, block: Block, stderr: str) -> None:
        """Add a problem for each alarm in ``stderr`` and each expected output missing."""
        for alarm in STDERR_ALARMS:
            if alarm in stderr:
                self.problems.append(f"stderr has {alarm!r}:\n{stderr}")
                break
        for text in block.outputs:
            if text not in self.output:
                self.problems.append(f"the output lacks {text!r}; it was:\n{self.output}")


def _clean_env() -> dict[str, str]:
    """This process's environment without FLOWRRA_* settings (a reader's defaults)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FLOWRRA_")}


def _write_files(group: list[Block], folder: Path) -> list[Path]:
    """Save each block of ``group`` in ``folder`` (under its own file name, if it names one)."""
    paths = []
    for block in group:
        path = folder / (block.filename or f"readme_line_{block.line}.py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.code, encoding="utf-8")
        paths.append(path)
    return paths


def _run_scripts(
    group: list[Block], folder: Path, env: dict[str, str] | None = None
) -> dict[int, Outcome]:
    env = _clean_env() if env is None else env
    outcomes = {}
    for block, path in zip(group, _write_files(group, folder), strict=True):
        done = subprocess.run(
            [sys.executable, str(path.relative_to(folder))],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT,
        )
        outcome = Outcome(output=done.stdout)
        if done.returncode != 0:
            outcome.problems.append(
                f"exit status {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
            )
        outcome.check(block, done.stderr)
        outcomes[block.line] = outcome
    return outcomes


def _cell_outcome(block: Block, cell: nbformat.NotebookNode) -> Outcome:
    outcome, stderr = Outcome(), ""
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream" and out.get("name") == "stderr":
            stderr += out.get("text", "")
        elif kind == "stream":
            outcome.output += out.get("text", "")
        elif kind in ("execute_result", "display_data"):
            outcome.output += out.get("data", {}).get("text/plain", "") + "\n"
        elif kind == "error":
            trace = "\n".join(out.get("traceback", []))
            outcome.problems.append(f"{out.get('ename')}: {out.get('evalue')}\n{trace}")
    outcome.check(block, stderr)
    return outcome


def _run_notebook(group: list[Block], folder: Path) -> dict[int, Outcome]:
    cells = [nbformat.v4.new_code_cell(block.code.strip()) for block in group]
    notebook = nbformat.v4.new_notebook(cells=cells)
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=int(SCRIPT_TIMEOUT),
        allow_errors=True,  # every cell runs; each block's test reports its own error
        resources={"metadata": {"path": str(folder)}},
    )
    client.execute(env=_clean_env())
    return {
        block.line: _cell_outcome(block, cell)
        for block, cell in zip(group, notebook.cells, strict=True)
    }


class Worker:
    """A ``flowrra worker`` subprocess; ``ready`` is set once it logs that it is ready (then
    ``started`` is true) or once it ends."""

    def __init__(self, command: list[str], folder: Path, env: dict[str, str]) -> None:
        executable = Path(sys.executable).with_name("flowrra")
        launcher = [str(executable)] if executable.exists() else [sys.executable, "-m", "flowrra"]
        self.lines: list[str] = []
        self.started = False
        self.ready = threading.Event()
        self.process = subprocess.Popen(
            launcher + command[1:],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if " ready: " in line:
                self.started = True
                self.ready.set()
        self.ready.set()  # the worker ended: nobody waits for nothing

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        """SIGTERM (the worker drains and exits), then SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._reader.join(timeout=10)


def _delete_keys(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _run_redis(group: list[Block], folder: Path) -> dict[int, Outcome]:
    require_redis()
    prefix = f"flowrra-test-{uuid.uuid4().hex[:10]}"
    separator = "&" if "?" in REDIS_URL else "?"
    env = _clean_env() | {
        "FLOWRRA_BROKER_URL": REDIS_URL,
        "FLOWRRA_BROKER_QUEUE_KEY": f"{prefix}:queue",
        "FLOWRRA_BACKEND_URL": f"{REDIS_URL}{separator}key_prefix={prefix}",
        "FLOWRRA_SECRET_KEY": secrets.token_hex(32),
    }
    _write_files(group, folder)  # the worker imports them
    worker = Worker(worker_command(BLOCKS, group[0].line), folder, env)
    try:
        worker.ready.wait(timeout=SCRIPT_TIMEOUT)
        if not worker.started:
            raise AssertionError(f"the README's `flowrra worker` did not start:\n{worker.log}")
        outcomes = _run_scripts(group, folder, env)
    finally:
        worker.stop()
        _delete_keys(prefix)
    for outcome in outcomes.values():
        if worker.process.returncode != 0 or STDERR_ALARMS[0] in worker.log:
            outcome.problems.append(
                f"the worker exited {worker.process.returncode}; its log:\n{worker.log}"
            )
    return outcomes


class SessionRunner:
    """Runs each session once, when the first of its blocks is tested."""

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self.tmp = tmp
        self.results: dict[int, dict[int, Outcome]] = {}

    def outcome(self, session: int, block: Block) -> Outcome:
        if session not in self.results:
            group = SESSIONS[session]
            folder = self.tmp.mktemp(f"readme-{group[0].test_id}")
            run = {"script": _run_scripts, "notebook": _run_notebook, "redis": _run_redis}
            try:
                self.results[session] = run[group[0].kind](group, folder)
            except Exception as exc:  # the session could not run: each block says so once
                problem = f"its session did not run: {type(exc).__name__}: {exc}"
                self.results[session] = {b.line: Outcome(problems=[problem]) for b in group}
        return self.results[session][block.line]


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> SessionRunner:
    return SessionRunner(tmp_path_factory)


def _cases() -> list[object]:
    cases: list[object] = [
        pytest.param(index, block, id=block.test_id)
        for index, group in enumerate(SESSIONS)
        for block in group
    ]
    cases += [
        pytest.param(-1, block, id=block.test_id, marks=pytest.mark.skip(reason=block.reason))
        for block in BLOCKS
        if block.lang == "python" and block.kind == "skip"
    ]
    return sorted(cases, key=lambda case: case.values[1].line)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("session", "block"), _cases())
def test_readme_block_runs_as_written(runner: SessionRunner, session: int, block: Block) -> None:
    if block.kind == "redis":
        require_redis()
    outcome = runner.outcome(session, block)
    if outcome.problems:
        pytest.fail(
            f"README.md line {block.line} ({block.heading}, {block.kind}) does not run as "
            "written; fix the README (or its readme-test marker):\n\n"
            + "\n\n".join(outcome.problems),
            pytrace=False,
        )


# What the README says to install.


def _extra_closure(extras: set[str]) -> set[str]:
    """The requirement names that ``pip install -e ".[extras]"`` brings, per pyproject.toml."""
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional, names, todo = table["optional-dependencies"], set(), list(extras)
    for requirement in table["dependencies"]:
        names.add(re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower())
    while todo:
        for requirement in optional[todo.pop()]:
            name = re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower()
            if name == "flowrra":
                todo += re.search(r"\[(.*)\]", requirement)[1].split(",")  # type: ignore[index]
            names.add(name)
    return names


def test_the_local_notebook_instructions_install_jupyterlab() -> None:
    text = (ROOT / "README.md").read_text()
    line = next(line for line in text.split("\n\n") if line.startswith("**Locally**"))
    extras = re.search(r'pip install -e "\.\[([\w,]+)\]"', line)
    assert extras is not None, f"the local notebook instructions name no extra: {line}"
    assert "jupyter lab notebooks/" in line
    installed = _extra_closure(set(extras[1].split(",")))
    assert {"jupyterlab", "matplotlib", "ipykernel", "redis"} <= installed


def test_the_test_extra_installs_every_other_extra() -> None:
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = set(optional["optional-dependencies"]) - {"test"}
    everything = set().union(*(_extra_closure({extra}) for extra in extras))
    assert everything <= _extra_closure({"test"})


def test_no_install_line_leads_to_the_published_0_1_8() -> None:
    """``pip install "flowrra[...]"`` resolves to PyPI's flowrra 0.1.8: install from a clone."""
    text = (ROOT / "README.md").read_text()
    assert not re.findall(r"pip install [\"']?flowrra\[", text)


async def test_the_demo_runs_what_the_readme_says() -> None:
    from flowrra import demo

    records = await demo.run_demo(out=io.StringIO())
    kinds = Counter(demo.app.registry.spec(r.task_name).cpu_bound for r in records)
    text = " ".join((ROOT / "README.md").read_text().split())
    assert f"`flowrra demo` (also `python -m flowrra demo`) runs {kinds[False]} IO tasks" in text
    assert f"and {kinds[True]} CPU tasks in worker processes" in text


# The reading of markers, on small READMEs of its own.

SAMPLE = """# Title

```bash
flowrra worker --app a:app --io-workers 2
```

## First

```python
print(1)
```

<!-- readme-test: notebook -->
```python
x = 1
```

<!-- readme-test: skip: needs a server named db -->
```python
connect("db")
```

<!-- readme-test: continues; output: 2; output: x -->
```python
print(x + 1)
```
"""


def test_markers_set_kind_session_and_outputs() -> None:
    blocks = [b for b in parse_blocks(SAMPLE) if b.lang == "python"]
    assert [(b.kind, b.continues) for b in blocks] == [
        ("script", False),
        ("notebook", False),
        ("skip", False),
        ("notebook", True),
    ]
    assert blocks[2].reason == "needs a server named db"
    assert blocks[3].outputs == ("2", "x")
    assert [[b.line for b in group] for group in sessions(blocks)] == [[9], [14, 24]]
    assert blocks[0].test_id == "first-L9"


def test_a_block_names_its_file_and_a_redis_block_finds_its_worker() -> None:
    blocks = parse_blocks("```python\n# pkg/tasks.py\nx = 1\n```\n```bash\n$ flowrra worker "
                          "--app pkg.tasks:app  # go\n```\n")  # fmt: skip
    assert blocks[0].filename == "pkg/tasks.py"
    assert worker_command(blocks, 1) == ["flowrra", "worker", "--app", "pkg.tasks:app"]
    with pytest.raises(ReadmeMarkerError, match="needs a ```bash block"):
        worker_command(blocks, 5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- readme-test: sript -->\n```python\n```\n", "unknown readme-test kind 'sript'"),
        ("<!-- readme-test: skip -->\n```python\n```\n", "reason after a colon"),
        ("<!-- readme-test: script; out: 1 -->\n```python\n```\n", "unknown readme-test opt"),
        ("<!-- readme-test: continues -->\n```python\n```\n", "'continues' needs a runnable"),
        ("<!-- readme-test: notebook -->\n\n```python\n```\n", "line right before"),
        ("<!-- readme-test: script -->\n```bash\n```\n", "go on ```python blocks"),
        ("text\n<!-- readme-test: script -->", "a marker with no fence"),
    ],
)
def test_a_bad_marker_says_how_to_fix_it(text: str, message: str) -> None:
    with pytest.raises(ReadmeMarkerError, match=re.escape(message)):
        parse_blocks(text)
