"""Executors: IO tasks on the event loop, CPU tasks in a pool of processes."""

from flowrra.executors.base import BaseTaskExecutor
from flowrra.executors.cpu import CPUExecutor
from flowrra.executors.io import IOExecutor

__all__ = ["BaseTaskExecutor", "CPUExecutor", "IOExecutor"]
