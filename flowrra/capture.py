"""What running tasks print and log: kept with each task's record, never printed.

IO tasks share one thread and one event loop, so capture is per task, not per process:

- ``sys.stdout`` and ``sys.stderr`` are replaced by a :class:`TaskStream` each, which
  writes to the running task's output when a task's body runs in the writing context
  (:func:`flowrra.context.current_context`), and to the stream it replaced otherwise;
  every other attribute is the replaced stream's (a kernel's ``OutStream`` keeps working);
- a log record factory (:func:`logging.setLogRecordFactory`, the standard hook) adds each
  log record a task's body makes to its output, as Python's default format prints it
  (the logger's level decides, as it does for printing; flowrra's own log lines are no
  task's output), and marks it; console handlers (a ``StreamHandler`` on the console's
  streams, ``logging.lastResort`` included) get a filter that skips marked records, so a
  task's log lines never print under an unrelated notebook cell. No handler is added to
  the root logger: ``logging.basicConfig()`` still configures logging while tasks run.
  Outside tasks all of this changes nothing.

Executors hold the capture while they run (:func:`acquire`, :func:`release`: the last
release puts the streams and handlers back); a CPU worker process installs it for its
whole life (:func:`install`). Threads a task starts itself with ``threading.Thread``
do not run in its context and print as usual; ``asyncio.to_thread`` copies the context,
so what it prints is the task's.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import IO, Any

from flowrra.context import current_context

__all__ = ["DEFAULT_OUTPUT_LIMIT", "TaskStream", "acquire", "install", "release"]

#: Characters of output kept per task, the most recent ones (64 KiB).
DEFAULT_OUTPUT_LIMIT = 65536

_lock = threading.Lock()
_holders = 0


class TaskStream:
    """Stands in for ``sys.stdout`` or ``sys.stderr``: what a running task writes goes
    to its output, everything else to ``stream``; other attributes are ``stream``'s.

    Usage::

        sys.stdout = TaskStream(sys.stdout)
    """

    def __init__(self, stream: IO[str]) -> None:
        """Stand in for ``stream``."""
        self.stream = stream

    def write(self, text: str) -> int:
        """Write ``text`` to the running task's output, or else to the stream."""
        context = current_context()
        if context is None or not context.captures:
            return self.stream.write(text)
        if type(text) is not str:
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        context.write(text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        """Write each of ``lines`` (as :meth:`write` does)."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Flush the stream (a task's output needs no flush)."""
        context = current_context()
        if context is None or not context.captures:
            self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        if name == "stream":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.stream, name)

    def __repr__(self) -> str:
        return f"<flowrra.capture.TaskStream for {self.stream!r}>"


def _own(record: logging.LogRecord) -> bool:
    """True for flowrra's own log lines: about tasks, not a task's output."""
    name = record.name
    return name == "flowrra" or name.startswith("flowrra.")


def _outside_tasks(record: logging.LogRecord) -> bool:
    """The filter of console handlers: skip a record a task's output already has."""
    return not getattr(record, "flowrra_captured", False)


_FORMATTER = logging.Formatter(logging.BASIC_FORMAT)
_previous_factory: Any = None
_seen_handlers: tuple[Any, ...] = ()


def _make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """The log record factory while capture is installed: a record made in a task's
    body (not flowrra's own) goes to the task's output and is marked for the console
    handlers' filter."""
    record = (_previous_factory or logging.LogRecord)(*args, **kwargs)
    context = current_context()
    if context is not None and context.captures and not _own(record):
        try:
            context.write(_FORMATTER.format(record) + "\n")
        except Exception:  # a bad format string must not break the task's logging call
            return record
        record.flowrra_captured = True
        if tuple(logging.getLogger().handlers) != _seen_handlers:
            _quiet_console_handlers()  # handlers set up since (logging.basicConfig())
    return record


def _consoles() -> list[Any]:
    streams = [sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__]
    return streams + [s.stream for s in streams if isinstance(s, TaskStream)]


def _quiet_console_handlers() -> None:
    global _seen_handlers
    root = logging.getLogger()
    _seen_handlers = tuple(root.handlers)
    consoles = _consoles()
    for handler in [*root.handlers, logging.lastResort]:
        stream = getattr(handler, "stream", None)
        if (
            isinstance(handler, logging.StreamHandler)
            and not isinstance(handler, logging.FileHandler)
            and any(stream is console for console in consoles)
        ):
            handler.addFilter(_outside_tasks)  # once: addFilter skips a filter it has


def install() -> None:
    """Capture from now on (idempotent): stand-ins for ``sys.stdout`` and
    ``sys.stderr`` unless they are already, the log record factory, and the console
    handlers' filter."""
    global _previous_factory
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, TaskStream):
            setattr(sys, name, TaskStream(stream))
    if logging.getLogRecordFactory() is not _make_record:
        _previous_factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_make_record)
    _quiet_console_handlers()


def _uninstall() -> None:
    global _previous_factory
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if isinstance(stream, TaskStream):
            setattr(sys, name, stream.stream)
    if logging.getLogRecordFactory() is _make_record:  # not if another hook came since
        logging.setLogRecordFactory(_previous_factory or logging.LogRecord)
        _previous_factory = None
    for handler in [*logging.getLogger().handlers, logging.lastResort]:
        if handler is not None:
            handler.removeFilter(_outside_tasks)


def acquire() -> None:
    """An executor starts: capture (see :func:`install`; done again at every start, so
    streams and handlers set up since are covered)."""
    global _holders
    with _lock:
        _holders += 1
        install()


def release() -> None:
    """An executor stops: the last one puts back the streams (those still ours) and the
    logging handlers as they were."""
    global _holders
    with _lock:
        _holders = max(_holders - 1, 0)
        if not _holders:
            _uninstall()
