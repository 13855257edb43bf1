"""``%flowrra doctor``: check the traps of running flowrra in a notebook, say how to fix each.

Each check returns a :class:`Check`: ``ok`` (fine), ``warn`` (works, with a catch) or
``fail`` (will not work), with a message and a fix. :func:`diagnose` runs them all.
"""

from __future__ import annotations

import asyncio
import html
import importlib
import importlib.metadata
import importlib.util
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flowrra.notebook.frontend import WIDGET_FILES, widget_file

if TYPE_CHECKING:
    from flowrra.app import Flowrra

__all__ = ["Check", "DoctorReport", "check_running_apps", "diagnose"]

MIN_IPYKERNEL = (7, 0, 1)
_MARKS = {"ok": "\u2713", "warn": "!", "fail": "\u2717"}
_COLOURS = {"ok": "green", "warn": "orange", "fail": "red"}
_DEFAULT_PORTS = {
    "redis": 6379,
    "rediss": 6379,
    "postgresql": 5432,
    "postgres": 5432,
    "mysql": 3306,
}


@dataclass(frozen=True)
class Check:
    """The outcome of one check: ``level`` is "ok", "warn" or "fail"."""

    name: str
    level: str
    message: str
    fix: str = ""


@dataclass
class DoctorReport:
    """Every check's outcome, shown as a table (HTML) or lines (text)."""

    checks: list[Check]

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return all(c.level != "fail" for c in self.checks)

    def __str__(self) -> str:
        lines = []
        for c in self.checks:
            lines.append(f"[{_MARKS[c.level]}] {c.name}: {c.message}")
            if c.fix:
                lines.append(f"    fix: {c.fix}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td style='color:{_COLOURS[c.level]};font-weight:bold'>{_MARKS[c.level]}</td>"
            f"<td>{html.escape(c.name)}</td><td>{html.escape(c.message)}</td>"
            f"<td>{html.escape(c.fix)}</td></tr>"
            for c in self.checks
        )
        return (
            "<table class='flowrra-doctor'><tr><th></th><th>check</th><th>finding</th>"
            f"<th>fix</th></tr>{rows}</table>"
        )


# ---------------------------------------------------------------- environment
def check_nest_asyncio() -> Check:
    """asyncio must not be patched (by nest_asyncio or anything else)."""
    c_task = getattr(asyncio.tasks, "_CTask", None)
    patched = getattr(asyncio, "_nest_patched", False) or (
        c_task is not None and asyncio.Task is not c_task
    )
    if not patched:
        return Check("asyncio", "ok", "asyncio is not patched")
    return Check(
        "asyncio",
        "fail",
        "asyncio has been patched (nest_asyncio.apply() or similar): tasks run on the "
        "slow pure-Python Task and re-entrant loops can starve flowrra's runtime loop",
        "remove nest_asyncio.apply() from the notebook and its imports, then restart the "
        "kernel; flowrra needs no patching",
    )


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def check_ipykernel() -> Check:
    """ipykernel must be 7.0.1 or newer."""
    try:
        version = importlib.metadata.version("ipykernel")
    except importlib.metadata.PackageNotFoundError:
        return Check(
            "ipykernel",
            "warn",
            "ipykernel is not installed (no Jupyter kernel here)",
            "pip install -e '.[notebook]' in flowrra's clone",
        )
    if _version_tuple(version) >= MIN_IPYKERNEL:
        return Check("ipykernel", "ok", f"ipykernel {version}")
    return Check(
        "ipykernel",
        "fail",
        f"ipykernel {version} is older than 7.0.1",
        "pip install -U 'ipykernel>=7.0.1', then restart the kernel",
    )


def check_widget_files() -> Check:
    """The task table's front-end files and anywidget must be present."""
    missing = [m for m in ("anywidget", "ipywidgets") if importlib.util.find_spec(m) is None]
    if missing:
        return Check(
            "widgets",
            "fail",
            f"not installed: {', '.join(missing)}",
            "pip install -e '.[notebook]' in flowrra's clone",
        )
    try:
        paths = [widget_file(name) for name in WIDGET_FILES]
    except FileNotFoundError as exc:
        return Check("widgets", "fail", str(exc), "pip install -e . again in flowrra's clone")
    return Check("widgets", "ok", f"front-end files in {paths[0].parent}")


# ------------------------------------------------------------------------ app
def check_start_method(app: Flowrra) -> Check:
    """CPU worker processes must not be forked from the (threaded) kernel."""
    method = app.config.executor.resolved_start_method
    if method != "fork":
        return Check("start method", "ok", f"CPU workers start with {method!r}")
    return Check(
        "start method",
        "fail",
        "CPU workers are forked from a kernel that runs threads: a fork can copy a held "
        "lock and hang",
        "Config(executor=ExecutorConfig(start_method='forkserver')) (or 'spawn')",
    )


def _importable(func: Callable[..., object]) -> bool:
    module = getattr(func, "__module__", None)
    if not module or module == "__main__":
        return False
    try:
        target: object = importlib.import_module(module)
        for part in func.__qualname__.split("."):
            target = getattr(target, part)
    except Exception:
        return False
    return target is func


def check_shipping(app: Flowrra) -> Check:
    """CPU tasks defined in the notebook go to the workers by value (cloudpickle)."""
    by_value = [s.name for s in app.registry.specs() if s.cpu_bound and not _importable(s.func)]
    if not by_value:
        return Check("shipping", "ok", "every CPU task is importable: sent by reference")
    return Check(
        "shipping",
        "warn",
        f"sent by value with cloudpickle (defined in the notebook or not importable): "
        f"{', '.join(by_value)}; what they use from the notebook is copied when sent",
        "fine for experiments; move them into a module to send them by reference and "
        "keep workers' copies in step with your edits",
    )


def _reachable(url: str) -> tuple[bool, str]:
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
    where = f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=1.5):
            return True, where
    except OSError as exc:
        return False, f"{where} ({exc.strerror or exc})"


def _service_urls(app: Flowrra) -> list[tuple[str, str]]:
    config = app.config
    urls = [
        ("broker", config.broker.url if config.broker else None),
        ("backend", config.backend.url if config.backend else None),
        ("scheduler database", config.scheduler.database_url if config.scheduler else None),
    ]
    return [(what, url) for what, url in urls if url and urlsplit(url).scheme in _DEFAULT_PORTS]


def check_services(app: Flowrra) -> list[Check]:
    """Redis and the scheduler's database must answer when the app is configured with them."""
    checks = []
    for what, url in _service_urls(app):
        up, where = _reachable(url)
        scheme = urlsplit(url).scheme
        if up:
            checks.append(Check(what, "ok", f"{scheme} reachable at {where}"))
        else:
            checks.append(
                Check(
                    what,
                    "fail",
                    f"{scheme} not reachable at {where}",
                    f"start the {scheme} server or correct the URL",
                )
            )
    return checks


def check_runtime(app: Flowrra) -> Check:
    """Where the app runs: the runtime thread keeps it going while cells block."""
    from flowrra import runtime

    home = app._home_loop
    if not app.is_running:
        return Check("app", "ok", "not started: %flowrra start (or await app.start())")
    if home is not None and home is runtime._loop:
        return Check("app", "ok", "running on flowrra's runtime thread")
    return Check(
        "app",
        "warn",
        "running on a loop of its own (not flowrra's runtime thread): it pauses whenever "
        "that loop does",
        "start it with %flowrra start or await app.start() in a kernel",
    )


def check_running_apps() -> Check:
    """The apps running on flowrra's runtime loop, each with its worker processes."""
    from flowrra.notebook.kernel_apps import describe_app, running_apps

    apps = running_apps()
    if not apps:
        return Check("running apps", "ok", "none on flowrra's runtime loop")
    found = "; ".join(describe_app(app) for app in apps)
    return Check("running apps", "ok", f"{len(apps)}: {found}")


def diagnose(app: Flowrra | None) -> DoctorReport:
    """Run every check (the app checks only when ``app`` is given)."""
    checks = [check_nest_asyncio(), check_ipykernel(), check_widget_files()]
    checks.append(check_running_apps())
    if app is not None:
        checks += [check_runtime(app), check_start_method(app), check_shipping(app)]
        checks += check_services(app)
    if "nest_asyncio" in sys.modules and checks[0].level == "ok":
        checks.insert(
            1,
            Check(
                "nest_asyncio",
                "warn",
                "nest_asyncio is imported (not applied)",
                "drop the import if nothing needs it",
            ),
        )
    return DoctorReport(checks)
