"""The notebook face of flowrra: the ``%flowrra`` magics, task handles and
the live :class:`TaskTable`.

``%load_ext flowrra`` loads it. Importing this package is cheap: IPython, ipywidgets
and anywidget are imported only when the magics or the table are used, and a missing
one says to ``pip install -e '.[notebook]' in flowrra's clone``.

Usage (in a notebook)::

    %load_ext flowrra
    from flowrra import Flowrra
    from flowrra.notebook import TaskTable

    app = Flowrra()
    await app.start()        # the app lives on flowrra's runtime thread
    TaskTable(app)           # a live table of its tasks

In a kernel, per-task log lines (a retry) do not print into the cells: the task table
and the records show them. ``logging.basicConfig()`` (or a handler on the
``flowrra.tasks`` logger) turns them back on; see :mod:`flowrra.notebook.kernel_apps`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowrra.notebook.doctor import DoctorReport
    from flowrra.notebook.handles import TaskHandle, TaskHandles
    from flowrra.notebook.table import TaskTable

__all__ = [
    "DoctorReport",
    "TaskHandle",
    "TaskHandles",
    "TaskTable",
    "load_ipython_extension",
    "unload_ipython_extension",
]

_LAZY = {
    "DoctorReport": "flowrra.notebook.doctor",
    "TaskHandle": "flowrra.notebook.handles",
    "TaskHandles": "flowrra.notebook.handles",
    "TaskTable": "flowrra.notebook.table",
}


def __getattr__(name: str) -> Any:
    """Import the public classes on first use (the table needs anywidget)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flowrra.notebook' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext flowrra``: register :class:`~flowrra.notebook.magics.FlowrraMagics`."""
    from flowrra.notebook.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext flowrra``: remove the magics and their configurable."""
    from flowrra.notebook.magics import unload_ipython_extension as unload

    unload(ipython)
