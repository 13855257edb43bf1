"""The ``flowrra`` command speaks to people: ``--version``, a description and examples in
each ``--help``, and one line (no traceback, one prefix) for every expected failure.

Every test runs the real command (``python -m flowrra``) in a subprocess.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.services import REDIS_URL

ROOT = Path(__file__).resolve().parents[1]
SECRET = "cli-test-secret-0123456789abcdef"
PASSWORD = "hunter2-do-not-show"

# A module with an app configured from FLOWRRA_* variables, and attributes that are not apps.
ENV_APP = """
from flowrra import Config, Flowrra

app = Flowrra(Config.from_env())
nothing = None
answer = 42
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWRRA_")}
    env.update(extra)
    return env


def run(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m flowrra ARGS`` to its end."""
    return subprocess.run(
        [sys.executable, "-m", "flowrra", *args],
        cwd=cwd,
        env=env if env is not None else _env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line(
    done: subprocess.CompletedProcess[str], status: int, prog: str = "flowrra worker"
) -> str:
    """Assert ``done`` failed with ``status`` and said so in one line, prefixed once by
    ``prog``, with no traceback; return the line without the prefix."""
    assert done.returncode == status, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    line = lines[0]
    assert line.startswith(f"{prog}: "), line
    message = line.removeprefix(f"{prog}: ")
    assert not message.startswith("flowrra"), line  # not "flowrra worker: flowrra worker ..."
    return message


def closed_port() -> int:
    """A local port nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def env_app(tmp_path: Path) -> Path:
    """A folder holding ``envapp.py`` (run the worker from there)."""
    (tmp_path / "envapp.py").write_text(ENV_APP)
    return tmp_path


# ------------------------------------------------------------------ version and help
def test_version_prints_the_installed_version() -> None:
    done = run("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"flowrra {version('flowrra')}"


def test_no_command_prints_help_and_exits_2() -> None:
    done = run()
    assert done.returncode == 2
    assert "demo" in done.stdout and "worker" in done.stdout and "--version" in done.stdout


def test_an_unknown_command_is_one_line() -> None:
    line = one_line(run("wrker"), 2, prog="flowrra")
    assert "invalid choice: 'wrker'" in line and "'flowrra --help'" in line


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("demo", ["in-memory queue", "no server needed", "example:", "flowrra demo"]),
        (
            "worker",
            ["Run the tasks of a Flowrra app", "Redis broker", "FLOWRRA_SECRET_KEY",
             "examples:", "flowrra worker --app myproject.tasks:app"],
        ),
    ],
)  # fmt: skip
def test_each_command_help_says_what_it_does_with_an_example(command: str, says: list[str]) -> None:
    done = run(command, "--help")
    assert done.returncode == 0, done.stderr
    for text in says:
        assert text in done.stdout, (text, done.stdout)


# ------------------------------------------------------------------- usage errors
@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--loglevel", "bogus"], "argument --loglevel: 'bogus' is not a log level; use one of"),
        (["--lease", "0"], "argument --lease: '0' is not a positive number of seconds"),
        (["--lease", "-1"], "argument --lease: '-1' is not a positive number of seconds"),
        (["--lease", "soon"], "argument --lease: 'soon' is not a positive number of seconds"),
        (["--lease", "inf"], "argument --lease: 'inf' is not a positive number of seconds"),
        (["--drain-timeout", "-5"], "argument --drain-timeout: '-5' is not a number of seconds"),
        (["--io-workers", "0"], "argument --io-workers: '0' is not a whole number of at least 1"),
        (["--cpu-workers", "two"], "argument --cpu-workers: 'two' is not a whole number"),
        (["--queues", "io,gpu"], "argument --queues: 'io,gpu' is not a queue list; use io, cpu"),
    ],
)  # fmt: skip
def test_a_bad_option_value_is_one_line_and_exit_2(options: list[str], says: str) -> None:
    line = one_line(run("worker", "--app", "tests.redis_app:app", *options), 2)
    assert line.startswith(says), line
    assert line.endswith("see 'flowrra worker --help'"), line


def test_a_missing_app_option_is_one_line() -> None:
    line = one_line(run("worker"), 2)
    assert "required: --app" in line


def test_loglevel_takes_any_case() -> None:
    # Parsing goes through; the demo app then fails for want of a broker, not the level.
    line = one_line(run("worker", "--app", "flowrra.demo:app", "--loglevel", "DEBUG"), 2)
    assert "no Redis broker" in line


# ------------------------------------------------------------------ the --app value
def test_an_app_without_a_colon_says_how_it_should_look() -> None:
    line = one_line(run("worker", "--app", "tests.redis_app"), 2)
    assert "--app must look like module:attribute, got 'tests.redis_app'" in line
    assert "e.g. --app myproject.tasks:app" in line


def test_a_module_that_does_not_exist() -> None:
    line = one_line(run("worker", "--app", "nosuch_module_xyz:app"), 2)
    assert "cannot import 'nosuch_module_xyz': there is no module of that name" in line
    assert "PYTHONPATH" in line


def test_a_module_whose_own_import_fails_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "needsmore.py").write_text("import some_missing_dependency_xyz\n")
    line = one_line(run("worker", "--app", "needsmore:app", cwd=tmp_path), 2)
    assert "importing 'needsmore' failed: No module named 'some_missing_dependency_xyz'" in line


def test_a_module_whose_config_from_env_is_bad(env_app: Path) -> None:
    env = _env(FLOWRRA_BROKER_RETRY_BUDGET="soon", FLOWRRA_BROKER_URL=REDIS_URL)
    line = one_line(run("worker", "--app", "envapp:app", cwd=env_app, env=env), 2)
    assert "FLOWRRA_BROKER_RETRY_BUDGET must be a number, got 'soon'" in line


def test_an_attribute_that_does_not_exist_names_the_apps_there() -> None:
    line = one_line(run("worker", "--app", "tests.redis_app:nosuchattr"), 2)
    assert "NoneType" not in line
    assert "module 'tests.redis_app' has no attribute 'nosuchattr'" in line
    assert "use --app tests.redis_app:app" in line


@pytest.mark.parametrize(("attribute", "kind"), [("nothing", "None"), ("answer", "an int")])
def test_an_attribute_that_is_not_an_app(env_app: Path, attribute: str, kind: str) -> None:
    line = one_line(run("worker", "--app", f"envapp:{attribute}", cwd=env_app), 2)
    assert f"envapp:{attribute} is {kind}, not a Flowrra app; use --app envapp:app" in line


def test_a_module_with_no_app_says_to_create_one() -> None:
    line = one_line(run("worker", "--app", "tests.services:REDIS_URL"), 2)
    assert "is a str, not a Flowrra app" in line
    assert "tests.services defines no Flowrra app: create one there" in line


def test_an_app_without_a_broker_has_one_prefix() -> None:
    line = one_line(run("worker", "--app", "flowrra.demo:app"), 2)
    assert line.startswith("the app has no Redis broker"), line
    assert "BrokerConfig(url='redis://...')" in line


def test_an_app_without_a_secret_key_has_one_prefix(env_app: Path) -> None:
    env = _env(FLOWRRA_BROKER_URL=REDIS_URL, FLOWRRA_BACKEND_URL=REDIS_URL)
    line = one_line(run("worker", "--app", "envapp:app", cwd=env_app, env=env), 2)
    assert line.startswith("the app has no secret key"), line
    assert "FLOWRRA_SECRET_KEY" in line


# -------------------------------------------------------------------- Redis down
@pytest.mark.parametrize(
    ("broker", "backend", "component", "shown"),
    [
        ("redis://:{pw}@127.0.0.1:{port}/0", "redis://127.0.0.1:{port}/0", "broker",
         "redis://:***@127.0.0.1:{port}/0"),
        ("{redis}", "redis://127.0.0.1:{port}/0?password={pw}", "result backend",
         "redis://127.0.0.1:{port}/0?password=***"),
    ],
)  # fmt: skip
def test_redis_out_of_reach_is_one_line_naming_the_url_without_its_password(
    env_app: Path, prefix: str, broker: str, backend: str, component: str, shown: str
) -> None:
    # The second case reaches the broker, then not the backend: the broker's connection
    # is closed, so even with warnings shown nothing but the one line is printed.
    port = closed_port()
    fill = {"pw": PASSWORD, "port": port, "redis": REDIS_URL}
    env = _env(
        FLOWRRA_SECRET_KEY=SECRET,
        FLOWRRA_BROKER_URL=broker.format(**fill),
        FLOWRRA_BROKER_QUEUE_KEY=f"{prefix}:queue",
        FLOWRRA_BROKER_RETRY_BUDGET="0.2",
        FLOWRRA_BACKEND_URL=backend.format(**fill),
        FLOWRRA_BACKEND_RETRY_BUDGET="0.2",
        PYTHONWARNINGS="default",
    )
    done = run("worker", "--app", "envapp:app", cwd=env_app, env=env)
    line = one_line(done, 1)
    assert PASSWORD not in done.stdout + done.stderr
    assert f"Cannot reach the Redis {component} at {shown.format(**fill)}" in line
    assert "check that Redis runs there" in line


# ---------------------------------------------------------- a worker that runs
def test_a_worker_logs_its_start_and_stop_once_prefixed(prefix: str) -> None:
    env = _env(FLOWRRA_TEST_PREFIX=prefix, FLOWRRA_SECRET_KEY=SECRET)
    env["FLOWRRA_TEST_REDIS_URL"] = REDIS_URL
    worker = subprocess.Popen(
        [sys.executable, "-m", "flowrra", "worker", "--app", "tests.redis_app:app",
         "--queues", "io", "--loglevel", "Info"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert worker.stdout is not None
    try:
        lines = []
        for line in worker.stdout:  # waits on the worker's own output
            lines.append(line)
            if " ready: " in line:
                break
        worker.send_signal(signal.SIGTERM)
        rest, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    log = "".join(lines) + rest
    assert worker.returncode == 0, log
    pid = worker.pid
    assert f"INFO flowrra.worker: worker {pid} ready: broker {REDIS_URL}, queues io," in log
    assert "tasks: nap, cube, hog, quit_now" in log
    assert "shutting down: finishing running tasks (up to 30s)" in log
    assert f"INFO flowrra.worker: worker {pid} stopped" in log
    assert "flowrra worker: flowrra worker" not in log and "Traceback" not in log
