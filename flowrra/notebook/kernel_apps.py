"""The apps a kernel runs: an app a cell lets go of is stopped, with its worker processes.

Cells are re-run all the time. Re-running ``app = Flowrra(...)`` ... ``await app.start()``
binds ``app`` to a new app; the old one would keep its executors, its scheduler, its
tables and its CPU worker processes on the runtime loop for as long as the kernel lives.

So, in a kernel, around each cell: before it, note the running apps bound to names in
the notebook; after it, stop each of those that the cell let go of (its name now holds
something else, or was deleted) and that the notebook no longer holds: no public name
binds it, nor a list, tuple, set, dict or object bound to a public name (IPython's output
history, ``Out`` and ``_``, does not count). One line says so. Tables that followed a
stopped app are closed with it.

Apps that were never bound to a name in the notebook (imported from a module, say) are
left alone.

Log lines of single tasks stay out of the cells, too. Python prints a warning that no
handler takes on stderr (``logging.lastResort``), and a kernel sends stderr to whichever
cell happens to run: a burst of retries would print a line per retry under an unrelated
cell. So in a kernel the ``flowrra.tasks`` logger (a retry of a task) gets a
``NullHandler``; the task table (row details) and the records (``error``,
``error_type``, ``retries``) say the same. Any logging configuration of the user's turns
them back on, as for any library that adds a ``NullHandler``::

    import logging
    logging.basicConfig()                  # every WARNING and above, flowrra's included
    # or only these lines, into a file rather than the cells:
    logging.getLogger("flowrra.tasks").addHandler(logging.FileHandler("tasks.log"))

Other flowrra warnings (a worker process that died, a configuration to fix) still show.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from flowrra import runtime
from flowrra.app import _live_apps
from flowrra.executors.base import task_logger

if TYPE_CHECKING:
    from flowrra.app import Flowrra

__all__ = [
    "describe_app",
    "held_by_notebook",
    "keep_task_logs_out_of_cells",
    "names_of",
    "running_apps",
    "stop_released_apps",
    "watch_cells",
    "watch_current_kernel",
]

_STOP_TIMEOUT = 30.0
_CONTAINERS = (list, tuple, set, frozenset)

_watched: set[int] = set()
_before: dict[str, Flowrra] = {}


def running_apps() -> list[Flowrra]:
    """The apps running on flowrra's runtime loop, oldest first."""
    loop = runtime._loop
    apps = [a for a in list(_live_apps) if a.is_running and a._home_loop is loop]
    return sorted(apps, key=lambda a: a._serial)


def names_of(app: Flowrra, namespace: dict[str, Any]) -> list[str]:
    """The public names in ``namespace`` bound to ``app``."""
    return [n for n, v in list(namespace.items()) if v is app and not n.startswith("_")]


def _user_namespace() -> dict[str, Any]:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "user_ns", None) or {}


def describe_app(app: Flowrra) -> str:
    """One phrase for ``app``: its names in the notebook and its worker processes."""
    names = names_of(app, _user_namespace())
    label = ", ".join(repr(n) for n in names) if names else "an app bound to no name"
    pids = app.cpu_executor.pool.pids
    workers = f"worker processes {', '.join(map(str, pids))}" if pids else "no worker process"
    return f"{label} ({workers})"


def _holds(value: Any, app: Flowrra) -> bool:
    if value is app:
        return True
    if isinstance(value, dict):
        return any(v is app for v in value.values())
    if isinstance(value, _CONTAINERS):
        return any(v is app for v in value)
    if type(value).__module__.startswith("flowrra.notebook"):
        return False  # a table or a handle follows an app; it does not keep it
    attributes = getattr(value, "__dict__", None)
    return isinstance(attributes, dict) and any(v is app for v in attributes.values())


def held_by_notebook(app: Flowrra, namespace: dict[str, Any]) -> bool:
    """True when a public name binds ``app``, or a container or object bound to one
    holds it directly."""
    return any(
        _holds(value, app) for name, value in list(namespace.items()) if not name.startswith("_")
    )


def _pre_run_cell(namespace: dict[str, Any]) -> None:
    _before.clear()
    apps = running_apps()
    if not apps:
        return
    for name, value in list(namespace.items()):
        if not name.startswith("_") and any(value is app for app in apps):
            _before[name] = value


def _close_tables(app: Flowrra) -> None:
    table = sys.modules.get("flowrra.notebook.table")
    if table is not None:
        table.close_tables_of(app)


def _stop(app: Flowrra, name: str) -> None:
    workers = len(app.cpu_executor.pool.pids)
    runtime.run_sync(app.stop, False, timeout=_STOP_TIMEOUT)
    _close_tables(app)
    print(
        f"flowrra: stopped the app that was {name!r} before this cell, as nothing in the "
        f"notebook holds it now ({workers} worker process(es) ended)"
    )


def stop_released_apps(namespace: dict[str, Any]) -> list[Flowrra]:
    """After a cell: stop the running apps it let go of (see the module doc)."""
    released: dict[int, tuple[str, Flowrra]] = {}
    for name, app in _before.items():
        if namespace.get(name) is not app and app.is_running:
            released.setdefault(id(app), (name, app))
    _before.clear()
    stopped = []
    for name, app in released.values():
        if not held_by_notebook(app, namespace):
            _stop(app, name)
            stopped.append(app)
    return stopped


def watch_cells(shell: Any) -> None:
    """Register the before- and after-cell steps with an IPython ``shell`` (once)."""
    if id(shell) in _watched:
        return
    _watched.add(id(shell))
    namespace = shell.user_ns
    shell.events.register("pre_run_cell", lambda *_: _pre_run_cell(namespace))
    shell.events.register("post_run_cell", lambda *_: stop_released_apps(namespace))


class _OutOfCells(logging.NullHandler):
    """The handler that keeps per-task lines out of a kernel's cells (see the module doc)."""


def keep_task_logs_out_of_cells() -> None:
    """Give the ``flowrra.tasks`` logger a ``NullHandler`` (once), so its lines do not
    fall through to ``logging.lastResort`` and into the running cell. A handler of the
    user's (``logging.basicConfig()``, or one on ``flowrra`` or ``flowrra.tasks``) still
    gets them."""
    if not any(isinstance(h, _OutOfCells) for h in task_logger.handlers):
        task_logger.addHandler(_OutOfCells())


def watch_current_kernel() -> None:
    """In a running IPython kernel: watch its cells for apps they let go of, and keep
    per-task log lines out of the cells."""
    if not runtime.in_kernel():
        return
    keep_task_logs_out_of_cells()
    shell = sys.modules["IPython"].get_ipython()
    watch_cells(shell)
