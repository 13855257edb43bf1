"""Imported by multiprocessing's forkserver only, as a preload module: ties it to its parent.

:func:`flowrra.executors.lifeline.arm_forkserver` lists this module among the forkserver's
preload modules. Imported there, it asks Linux to SIGKILL the forkserver when the process
that started it dies, and the workers it forked (tied to the forkserver the same way)
die with it. Imported anywhere else it does nothing.
"""

from __future__ import annotations

import sys

from flowrra.executors.lifeline import die_with_parent

__all__: list[str] = []


def _in_forkserver() -> bool:
    """True when this import runs inside ``multiprocessing.forkserver.main``."""
    forkserver = sys.modules.get("multiprocessing.forkserver")
    if forkserver is None:
        return False
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is forkserver.main.__code__:
            return True
        frame = frame.f_back
    return False


if _in_forkserver():
    die_with_parent()
