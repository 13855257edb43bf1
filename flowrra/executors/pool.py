"""A process pool that survives its workers.

Each worker is a process with a duplex pipe. The parent reads replies with
``loop.add_reader`` (no threads, no polling), gives each worker one task at a time, and
knows which worker runs which task, so it can kill exactly that worker on a timeout or a
cancel. A worker that dies, however it dies, fails only its own task and is replaced.

Functions are sent once per worker: the first call carries the function's bytes, later
calls only its digest.

No worker outlives the process that owns the pool, however that process dies: see
:mod:`flowrra.executors.lifeline` (processes are started from its launcher thread, each
worker watches its pipe, and the forkserver is tied to its parent too).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import multiprocessing
import pickle
import signal
import sys
from collections.abc import Callable
from contextvars import Token
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from flowrra import capture
from flowrra.context import TaskContext
from flowrra.exceptions import FlowrraError, SerializationError, WorkerLostError
from flowrra.executors.lifeline import arm_forkserver, die_with_parent, launch, watch_pipe
from flowrra.executors.main_guard import (
    UNGUARDED_MAIN_EXIT,
    WORKER_NAME,
    forkserver_refused,
    unguarded_main_error,
)
from flowrra.executors.reporting import PROGRESS_MESSAGE, PipeReporter, child_values
from flowrra.executors.tracebacks import task_traceback
from flowrra.serialization import dumps, dumps_function, loads
from flowrra.task import Task

__all__ = ["ProcessPool", "RemoteTaskError", "worker_main"]

logger = logging.getLogger("flowrra.pool")


class RemoteTaskError(FlowrraError):
    """An exception raised by a task in a worker process, carried back as text.

    ``error_type`` is the remote exception's class name and ``remote_traceback`` the
    worker's traceback.
    """

    def __init__(self, error_type: str, message: str, remote_traceback: str) -> None:
        self.error_type = error_type
        self.remote_traceback = remote_traceback or None
        self.retryable = error_type != "SerializationError"
        super().__init__(message)


# ------------------------------------------------------------------ worker side
def worker_main(conn: Connection) -> None:
    """Loop of a worker process: load a call, run it, send the reply, until EOF.

    The worker exits as soon as the pool's end of ``conn`` closes, even mid-task, and
    on Linux when its parent dies (see :mod:`flowrra.executors.lifeline`).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a notebook stops waits only
    die_with_parent()
    watch_pipe(conn.fileno())
    conn.send_bytes(b"")  # started: from now on an exit status is the task's doing
    capture.install()  # what tasks print and log goes back with their replies
    reporter = PipeReporter(conn)
    cache: dict[str, Callable[..., Any]] = {}
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        digest, fn_bytes, payload, info = pickle.loads(data)
        conn.send_bytes(_run_call(cache, digest, fn_bytes, payload, (info, reporter)))


def _run_call(
    cache: dict[str, Callable[..., Any]],
    digest: str,
    fn_bytes: bytes | None,
    payload: bytes,
    about: tuple[tuple[Task, int, int] | None, PipeReporter],
) -> bytes:
    """Run one call; the reply is ``(ok, value or error, loaded, last reports)``."""
    try:
        func = cache.get(digest)
        if func is None:
            if fn_bytes is None:
                raise LookupError("function not sent to this worker")
            func = cache[digest] = loads(fn_bytes)
    except Exception as exc:
        return pickle.dumps((False, _describe(exc), False, None))
    context = _begin(*about)
    token = context.enter() if context is not None else None
    try:
        args, kwargs = loads(payload)
        value = func(*args, **kwargs)
    except Exception as exc:
        return pickle.dumps((False, _describe(exc), True, _end(context, token, about[1])))
    last = _end(context, token, about[1])
    try:
        return dumps((True, value, True, last), what="result")
    except SerializationError as exc:
        return pickle.dumps((False, ("SerializationError", str(exc), ""), True, last))


def _begin(info: tuple[Task, int, int] | None, reporter: PipeReporter) -> TaskContext | None:
    """The context of the task a call runs (None for a bare call)."""
    if info is None:
        return None
    task, output_limit, log_level = info
    context = TaskContext(task, None, reporter)
    reporter.begin(context, output_limit)
    logging.getLogger().setLevel(log_level)  # the pool's process's, so logs match
    return context


def _end(
    context: TaskContext | None, token: Token[TaskContext | None] | None, reporter: PipeReporter
) -> tuple[Any, ...] | None:
    """The body ended: stop reporting; the last values, for the reply."""
    if context is None or token is None:
        return None
    reporter.end()
    context.leave(token)
    return context.take()


def _call_info(context: TaskContext | None, output_limit: int) -> tuple[Task, int, int] | None:
    """What a worker process needs to know of the task it runs (not its arguments)."""
    if context is None:
        return None
    task = dataclasses.replace(context.task, args=(), kwargs={})
    return task, output_limit, logging.getLogger().level


def _describe(exc: BaseException) -> tuple[str, str, str]:
    return type(exc).__name__, str(exc) or repr(exc), task_traceback(exc)


# ------------------------------------------------------------------ parent side
class _MainRefused(Exception):
    """The forkserver ended as it imported the main script (see main_guard)."""


class _Worker:
    __slots__ = ("conn", "context", "dead", "future", "known", "proc", "started")

    def __init__(self, proc: BaseProcess, conn: Connection) -> None:
        self.proc = proc
        self.conn = conn
        self.known: set[str] = set()
        self.future: asyncio.Future[Any] | None = None
        self.context: TaskContext | None = None  # of the task it runs, for its reports
        self.dead = False
        self.started = False  # it said so: bootstrapping (re-importing __main__) is over


def _death_cause(proc: BaseProcess) -> str:
    code = proc.exitcode
    if code is None:
        return "its exit status is unknown"
    if code < 0:
        try:
            return f"it was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"it was killed by signal {-code}"
    return f"it exited with code {code}"


def _give_main_a_spec() -> None:
    """multiprocessing reads ``__main__.__spec__`` when it starts a process. A
    ``__main__`` replaced by an embedding tool (IPython's InteractiveShell in a plain
    Python process) may lack the attribute, and every worker start then failed with
    AttributeError; a module without a spec has ``__spec__ = None``."""
    main = sys.modules.get("__main__")
    if main is not None and not hasattr(main, "__spec__"):
        main.__spec__ = None  # type: ignore[attr-defined]


class ProcessPool:
    """``size`` worker processes started with ``start_method``; see the module docstring.

    Usage::

        pool = ProcessPool(2, "forkserver")
        value = await pool.run(func, (1, 2), {})
        await pool.close()
    """

    def __init__(self, size: int, start_method: str) -> None:
        """Describe the pool; no process starts before :meth:`start`."""
        self.size = size
        self.start_method = start_method
        self._ctx = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            arm_forkserver(self._ctx)
        self._workers: list[_Worker] = []
        #: Idle workers; None wakes a waiter when the pool cannot start (``_refused``).
        self._idle: asyncio.Queue[_Worker | None] | None = None
        self._functions: dict[Any, tuple[str, bytes]] = {}
        self._starting: asyncio.Task[None] | None = None
        self._spawning: set[asyncio.Task[None]] = set()
        self._closed = False
        #: The worker processes refused to start: the main script has no main guard.
        self._refused = False
        self._refused_at_launch = False  # the launcher thread's own flag of the same
        self.bytes_sent = 0
        self.replaced = 0

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        return [w.proc.pid for w in self._workers if not w.dead and w.proc.pid is not None]

    async def settled(self) -> None:
        """Wait until every replacement worker being started has started."""
        # Only the unfinished ones: a finished spawn leaves the set by its done callback,
        # which runs later, and gather of finished tasks returns without yielding to the
        # loop on Python 3.12+, so waiting on it again would spin for ever.
        while pending := [task for task in self._spawning if not task.done()]:
            await asyncio.wait(pending)

    async def start(self) -> None:
        """Start the worker processes (once; later calls wait for the first)."""
        if self._starting is None:
            self._closed = False
            self._refused = self._refused_at_launch = False
            self._idle = asyncio.Queue()
            # a context of its own: not the one of the task whose call started the pool
            # (what runs in it, readers included, is no task's doing)
            self._starting = asyncio.get_running_loop().create_task(
                self._spawn_all(), context=contextvars.Context()
            )
        await asyncio.shield(self._starting)

    async def _spawn_all(self) -> None:
        await asyncio.gather(*(self._spawn() for _ in range(self.size)))

    def _launch(self) -> tuple[BaseProcess, Connection]:
        if self._refused_at_launch:  # a new forkserver would import the script again
            raise _MainRefused()
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=worker_main, args=(child_conn,), daemon=True, name=WORKER_NAME
        )
        _give_main_a_spec()
        try:
            proc.start()
        except Exception:
            parent_conn.close()
            if self.start_method == "forkserver" and forkserver_refused():
                self._refused_at_launch = True
                raise _MainRefused() from None
            raise
        finally:
            child_conn.close()
        return proc, parent_conn

    async def _spawn(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            proc, conn = await asyncio.wrap_future(launch(self._launch))
        except _MainRefused:
            self._refuse()
            return
        worker = _Worker(proc, conn)
        if self._closed:
            await loop.run_in_executor(None, _shutdown_worker, worker)
            return
        self._workers.append(worker)
        loop.add_reader(conn.fileno(), self._on_readable, worker)
        assert self._idle is not None
        self._idle.put_nowait(worker)

    def _function(self, func: Callable[..., Any]) -> tuple[str, bytes]:
        try:
            cached = self._functions.get(func)
        except TypeError:  # unhashable callable: no cache
            return dumps_function(func)
        if cached is None:
            cached = self._functions[func] = dumps_function(func)
        return cached

    async def run(
        self,
        func: Callable[..., Any],
        args: tuple,
        kwargs: dict,
        context: TaskContext | None = None,
        *,
        output_limit: int = 0,
    ) -> Any:
        """Run ``func(*args, **kwargs)`` in a worker and return its value.

        With the ``context`` of the task it runs, the function sees it as
        :func:`~flowrra.context.current_task` there, and its progress and output (at
        most ``output_limit`` characters; 0: not captured) come back into ``context``.

        Raises:
            SerializationError: an argument or the result cannot be pickled.
            RemoteTaskError: the function raised; carries its type and traceback.
            WorkerLostError: the worker died while running it.
        """
        digest, fn_bytes = self._function(func)
        payload = dumps((args, kwargs), what="arguments")
        await self.start()
        worker = await self._idle_worker()
        send_fn = None if digest in worker.known else fn_bytes
        info = _call_info(context, output_limit)
        message = pickle.dumps((digest, send_fn, payload, info), protocol=pickle.HIGHEST_PROTOCOL)
        future = asyncio.get_running_loop().create_future()
        worker.future = future
        worker.context = context
        try:
            try:
                worker.conn.send_bytes(message)
            except OSError:  # it died before it could take the call: fail it as a death
                self._on_death(worker)
            else:
                self.bytes_sent += len(message)
                if send_fn is not None:
                    worker.known.add(digest)
            ok, value, loaded, last = await future
        except asyncio.CancelledError:
            if worker.future is future:  # still running: the only way to stop it is to kill it
                self._kill(worker)
            raise
        finally:
            worker.context = None
            if not worker.dead and self._idle is not None:
                worker.future = None
                self._idle.put_nowait(worker)
        if last is not None and context is not None:
            context.absorb(last)
        if ok:
            return value
        if not loaded:
            worker.known.discard(digest)
        raise RemoteTaskError(*value)

    async def _idle_worker(self) -> _Worker:
        """The next idle live worker; raises the main-guard error if the pool cannot start."""
        idle = self._idle
        assert idle is not None
        while True:
            if self._refused:
                idle.put_nowait(None)  # wake the next waiter too
                raise unguarded_main_error()
            worker = await idle.get()
            if worker is not None and not worker.dead:
                return worker

    def _refuse(self) -> None:
        """The pool's processes refused to start (no main guard): say it once, wake
        every waiting call, and start no more processes."""
        if not self._refused:
            self._refused = True
            logger.error("%s", unguarded_main_error())
        if self._idle is not None:
            self._idle.put_nowait(None)

    def _on_readable(self, worker: _Worker) -> None:
        try:
            data = worker.conn.recv_bytes()
            if not data:  # worker_main's first word: it has started
                worker.started = True
                return
            if data[:1] == PROGRESS_MESSAGE:
                self._on_report(worker, data)
                return
            reply = loads(data)
        except (EOFError, OSError):
            self._on_death(worker)
            return
        except Exception as exc:  # a result the parent cannot load
            reply = (
                False,
                ("SerializationError", f"cannot load the task's result: {exc}", ""),
                True,
                None,
            )
        future, worker.future = worker.future, None
        if future is not None and not future.done():
            future.set_result(reply)

    @staticmethod
    def _on_report(worker: _Worker, data: bytes) -> None:
        """Progress and output of the task a worker runs (see PipeReporter)."""
        context = worker.context
        if context is None:
            return
        try:
            context.absorb(child_values(data))
        except Exception:
            logger.exception("Ignored a progress report of task %s", context.task_id)

    def _detach(self, worker: _Worker) -> None:
        worker.dead = True
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(worker.conn.fileno())
        with contextlib.suppress(ValueError):
            self._workers.remove(worker)

    def _on_death(self, worker: _Worker) -> None:
        self._detach(worker)
        worker.proc.join(1.0)  # it is gone already: this only reaps it
        worker.conn.close()
        if not worker.started and worker.proc.exitcode == UNGUARDED_MAIN_EXIT:
            # it stopped while importing the main script: the script has no main guard
            future, worker.future = worker.future, None
            if future is not None and not future.done():
                future.set_exception(unguarded_main_error())
            self._refuse()
            return
        cause = _death_cause(worker.proc)
        logger.warning(
            "CPU worker process %s died (%s); starting a new one", worker.proc.pid, cause
        )
        future, worker.future = worker.future, None
        if future is not None and not future.done():
            future.set_exception(
                WorkerLostError(
                    f"The worker process (pid {worker.proc.pid}) running this task died: {cause}"
                )
            )
        self._replace()

    def _kill(self, worker: _Worker) -> None:
        self._detach(worker)
        worker.future = None
        with contextlib.suppress(Exception):
            worker.proc.kill()
        loop = asyncio.get_running_loop()
        reap = loop.run_in_executor(None, _shutdown_worker, worker)
        reap.add_done_callback(lambda _f: None)
        self._replace()

    def _replace(self) -> None:
        if self._closed or self._refused:
            return
        self.replaced += 1
        task = asyncio.get_running_loop().create_task(self._spawn(), context=contextvars.Context())
        self._spawning.add(task)
        task.add_done_callback(self._spawned)

    def _spawned(self, task: asyncio.Task[None]) -> None:
        self._spawning.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("Could not start a new CPU worker process: %r", exc)

    async def close(self) -> None:
        """Stop every worker (running tasks are abandoned) without blocking the loop."""
        self._closed = True
        if self._starting is not None:
            with contextlib.suppress(Exception):
                await self._starting
        await self.settled()
        workers, self._workers = self._workers, []
        for worker in workers:
            self._detach(worker)
            future, worker.future = worker.future, None
            if future is not None and not future.done():
                future.cancel()
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(None, _shutdown_worker, w) for w in workers))
        self._starting = None
        self._idle = None


def _shutdown_worker(worker: _Worker) -> None:
    """Close the pipe (the worker exits on EOF), then make sure the process is gone."""
    with contextlib.suppress(Exception):
        worker.conn.close()
    worker.proc.join(2.0)
    if worker.proc.is_alive():
        worker.proc.kill()
        worker.proc.join(2.0)
    with contextlib.suppress(Exception):
        worker.proc.close()
