"""Kept for flowrra 0.1.8 code: ``from flowrra.executors.io_executor import IOExecutor``.

The IO executor lives in :mod:`flowrra.executors.io`; this module re-exports it under
its 0.1.8 path.
"""

from flowrra.executors.io import IOExecutor

__all__ = ["IOExecutor"]
