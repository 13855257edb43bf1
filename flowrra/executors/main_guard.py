"""A script without the ``if __name__ == "__main__":`` guard: one message, at once.

A CPU worker process started with spawn or forkserver first imports the parent's main
script again (as ``__mp_main__``) so that its functions exist there. A script that starts
flowrra at import time, outside the guard, would start it again in that process, which
would start worker processes of its own while multiprocessing is still bootstrapping it:
a screen of RuntimeErrors per process, and tasks retried until they fail.

Instead, a process that starts flowrra while multiprocessing is bootstrapping it
(:func:`refuse_start_while_bootstrapping`, called by ``start()``) ends at once with
:data:`UNGUARDED_MAIN_EXIT`, before the script goes further. The process pool that
started it sees that exit status (a worker's, or the forkserver's) and fails its CPU
tasks with one :class:`~flowrra.exceptions.FlowrraError` that names the fix
(:func:`unguarded_main_error`); a process that is not flowrra's says it in one line.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import select
import sys

from flowrra.exceptions import FlowrraError

__all__ = [
    "UNGUARDED_MAIN_EXIT",
    "WORKER_NAME",
    "forkserver_refused",
    "refuse_start_while_bootstrapping",
    "unguarded_main_error",
]

#: Exit status of a process that refused to start flowrra while being bootstrapped.
UNGUARDED_MAIN_EXIT = 87

#: The name of the pool's worker processes (they leave the message to the pool).
WORKER_NAME = "flowrra-cpu-worker"

_FIX = "put the code that starts flowrra under `if __name__ == '__main__':`"


def _main_script() -> str:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return f"your main script ({path})" if path else "your main module"


def unguarded_main_error() -> FlowrraError:
    """The error CPU tasks fail with when the pool's processes refused to start."""
    error = FlowrraError(
        f"The CPU worker processes could not start: each one imports {_main_script()} "
        "again, and it starts flowrra at import time, outside the "
        "`if __name__ == '__main__':` guard. Fix: "
        f"{_FIX} (as multiprocessing requires; see 'Safe importing of main module' in "
        "the multiprocessing docs). IO tasks are not affected."
    )
    error.retryable = False  # type: ignore[attr-defined]
    return error


def _bootstrapping() -> bool:
    """True while multiprocessing prepares this process (it imports the parent's main
    script in a spawned child, a forkserver, or a forkserver's child)."""
    return bool(getattr(multiprocessing.current_process(), "_inheriting", False))


def refuse_start_while_bootstrapping() -> None:
    """End this process if multiprocessing is still bootstrapping it (see the module doc).

    Called by ``start()``; does nothing in every other process.
    """
    if not _bootstrapping():
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if multiprocessing.current_process().name != WORKER_NAME and not _in_flowrra_forkserver():
        with contextlib.suppress(Exception):
            sys.stderr.write(
                f"flowrra: this process re-imported {_main_script()}, which starts flowrra "
                f"outside the `if __name__ == '__main__':` guard; stopping it. Fix: {_FIX}\n"
            )
            sys.stderr.flush()
    os._exit(UNGUARDED_MAIN_EXIT)


def _in_flowrra_forkserver() -> bool:
    """True in a forkserver whose preload list names flowrra's (the pool reports)."""
    from flowrra.executors.lifeline import FORKSERVER_PRELOAD

    forkserver = sys.modules.get("multiprocessing.forkserver")
    if forkserver is None:
        return False
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is forkserver.main.__code__:
            return FORKSERVER_PRELOAD in (frame.f_locals.get("preload") or ())
        frame = frame.f_back
    return False


def forkserver_refused() -> bool:
    """True when multiprocessing's forkserver has ended with :data:`UNGUARDED_MAIN_EXIT`.

    For a process start that failed. The status is read without reaping the forkserver
    (multiprocessing reaps it, and starts a new one on the next start); a forkserver that
    is still running after two seconds did not refuse.
    """
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
    if pid is None or not hasattr(os, "pidfd_open") or not hasattr(os, "waitid"):
        return False
    try:
        handle = os.pidfd_open(pid)
    except OSError:
        return False
    try:  # readable once the process has ended
        ended = select.select([handle], [], [], 2.0)[0]
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        result = os.waitid(os.P_PID, pid, flags) if ended else None
    except OSError:
        return False
    finally:
        os.close(handle)
    return (
        result is not None
        and result.si_code == os.CLD_EXITED
        and result.si_status == UNGUARDED_MAIN_EXIT
    )
