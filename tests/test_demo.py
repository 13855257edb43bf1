"""The main job: ``flowrra demo`` runs on the embedded defaults with no server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWRRA_")}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def test_python_dash_m_flowrra_demo() -> None:
    done = _run(sys.executable, "-m", "flowrra", "demo")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "task       args" in out and "36 tasks:" in out
    assert "success" in out and "failed" in out and "retries" in out
    assert "report" in out  # the CPU tasks ran in worker processes


def test_console_script_exists_and_shows_help() -> None:
    script = Path(sys.executable).with_name("flowrra")
    if not script.exists():
        pytest.skip("the flowrra console script is not installed in this environment")
    done = _run(str(script))
    assert done.returncode == 2 and "demo" in done.stdout
