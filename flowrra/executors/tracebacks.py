"""The traceback a failed task's record keeps: it starts at the task's own code.

The frames that called the task (the executor's worker, the process pool's call loop,
asyncio's and ``concurrent.futures``' machinery between them) say nothing the user can
act on, so they are dropped from the front of each traceback, as pytest and dask trim
their own frames. Frames the task's code called keep their place, flowrra's included.
A traceback made of internal frames only (an error flowrra raised itself) is kept whole.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import traceback

import flowrra

__all__ = ["task_traceback"]


def _folder(module: object) -> str:
    return os.path.dirname(getattr(module, "__file__", None) or "") + os.sep


#: Folders whose frames are the machinery that runs a task, not the task.
_INTERNAL = tuple(_folder(module) for module in (flowrra, asyncio, concurrent.futures))


def _internal(filename: str) -> bool:
    return filename.startswith(_INTERNAL)


def _trim(report: traceback.TracebackException) -> None:
    """Drop the internal frames at the front of ``report``'s stack, unless all are."""
    frames = report.stack
    first = next((i for i, frame in enumerate(frames) if not _internal(frame.filename)), None)
    if first:  # None: nothing but internal frames; 0: nothing to drop
        report.stack = traceback.StackSummary.from_list(list(frames)[first:])


def task_traceback(exc: BaseException) -> str:
    """``exc``'s formatted traceback, each exception of its chain (causes, contexts,
    groups) starting at the first frame outside flowrra, asyncio and
    ``concurrent.futures``."""
    report = traceback.TracebackException.from_exception(exc)
    pending, seen = [report], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        _trim(current)
        pending.extend(
            linked
            for linked in (current.__cause__, current.__context__, *(current.exceptions or ()))
            if linked is not None
        )
    return "".join(report.format())
