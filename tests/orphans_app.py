"""The app the orphan tests' ``flowrra worker`` processes run: ``redis_app`` plus ``hold``."""

from __future__ import annotations

import time
from pathlib import Path

from tests.redis_app import PREFIX, URL, make_app


def hold(marker: str) -> str:
    """First delivery: leave ``marker`` and run for two minutes. Any later one: return."""
    path = Path(marker)
    if path.exists():
        return "again"
    path.write_text("started")
    time.sleep(120)
    return "first"


app = make_app(PREFIX, URL)
app.task(cpu_bound=True)(hold)
