"""Kept for flowrra 0.1.8 code: ``from flowrra.executors.cpu_executor import CPUExecutor``.

The CPU executor lives in :mod:`flowrra.executors.cpu`; this module re-exports it under
its 0.1.8 path.
"""

from flowrra.executors.cpu import CPUExecutor

__all__ = ["CPUExecutor"]
