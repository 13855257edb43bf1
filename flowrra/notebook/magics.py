"""The ``%flowrra`` line magic and the ``%%flowrra task`` cell magic.

``%load_ext flowrra`` registers :class:`FlowrraMagics`. The magics act on the current
app: the one named with ``%flowrra use NAME``, else the most recently created
:class:`~flowrra.Flowrra` still alive in the kernel. Arguments are Python
expressions evaluated in the notebook's namespace; a word is one expression, and
brackets and strings may hold spaces (``%flowrra map square [1, 2, 3]``).

=========================================================  ===============================
``%flowrra start`` / ``stop [--no-wait] [--timeout S]``     start / stop the app
``%flowrra use NAME``                                      pick the app the magics act on
``%flowrra submit TASK ARG... [--priority N] [-o VAR]``     submit; returns a TaskHandle
``%flowrra map TASK ITERABLE [--priority N] [-o VAR]``      one task per item; TaskHandles
``%flowrra wait [VAR | ID ...] [--timeout S]``              wait with a progress bar
``%flowrra status``                                        the live task table
``%flowrra results [--status S] [--task N] [--limit N]``    records as a DataFrame
``%flowrra schedules``                                     schedules as a DataFrame
``%flowrra schedule TASK (--cron E | --every S | --at T)``  add a schedule
``%flowrra cancel ID...``                                  cancel tasks
``%flowrra doctor``                                        check the notebook traps
``%%flowrra task [--name N] [--cpu | --io] [--retries N]``  register the cell's function
=========================================================  ===============================

``%flowrra -h`` lists the subcommands; ``%flowrra SUBCOMMAND -h`` shows one's options.
Options live in ``%config FlowrraMagics`` (``refresh_hz``, ``max_rows``,
``noninteractive``, ``default_executor``).

Errors are short: a :class:`~flowrra.FlowrraError` (an unregistered task, an unknown id,
an app that is not running), a ``TypeError`` from a task's arguments and an error in an
argument's expression show as one line ``Type: message`` that says what to do, not as a
traceback through flowrra. They keep their type, so ``except FlowrraError`` still works.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import io
import os
import tokenize
import weakref
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import Bool, Enum, Float, Int, TraitError, default, validate
from traitlets.config.configurable import Configurable

from flowrra import runtime
from flowrra.app import Flowrra, latest_app
from flowrra.clock import ensure_aware
from flowrra.constants import TASK_STATUSES
from flowrra.exceptions import (
    ExecutorNotRunningError,
    FlowrraError,
    TaskNotFoundError,
    TaskTimeoutError,
    UnknownTaskIdError,
)
from flowrra.notebook.doctor import DoctorReport, diagnose
from flowrra.notebook.handles import TaskHandle, TaskHandles
from flowrra.notebook.kernel_apps import keep_task_logs_out_of_cells
from flowrra.notebook.progress import WaitProgress
from flowrra.notebook.table_state import TaskTableState, format_rows, load_snapshot
from flowrra.task import TaskResult

__all__ = [
    "FlowrraMagics",
    "load_ipython_extension",
    "split_arguments",
    "unload_ipython_extension",
]

_LIVE = ("pending", "running", "retrying")
_HELP_WORDS = ("-h", "--help", "help")
_LISTED_TASKS = 20  # registered names an error lists at most
_NOT_RUNNING = (
    "The app is not running: start it with %flowrra start (or await app.start() in a cell)"
)
_SKIPPED_TOKENS = (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.COMMENT)
_OPENERS, _CLOSERS = "([{", ")]}"


def split_arguments(line: str) -> list[str]:
    """Split a magic's line into words, each a Python expression or an option.

    Whitespace separates words except inside brackets and strings, so ``f(a, b)``,
    ``[1, 2]`` and ``"a b"`` stay whole.

    Raises:
        UsageError: the line does not tokenize (an unclosed bracket or string).
    """
    line = line.strip()
    words: list[str] = []
    depth, last_end = 0, -1
    try:
        for token in tokenize.generate_tokens(io.StringIO(line).readline):
            if token.type in _SKIPPED_TOKENS or not token.string:
                continue
            start, end = token.start[1], token.end[1]
            if depth == 0 and start > last_end:
                words.append(line[start:end])
            else:
                words[-1] += line[last_end:end]
            depth += (token.string in _OPENERS) - (token.string in _CLOSERS)
            last_end = end
    except (tokenize.TokenError, SyntaxError) as exc:
        raise UsageError(f"Cannot read the arguments {line!r}: {exc}") from None
    return words


def _text(word: str) -> str:
    """A word given as text: a quoted string literal is unquoted, anything else kept."""
    if word[:1] in ("'", '"'):
        try:
            value = ast.literal_eval(word)
        except (ValueError, SyntaxError):
            return word
        return str(value)
    return word


def _positive(word: str) -> float:
    value = float(word)
    if not value > 0:
        raise ValueError(word)
    return value


def _non_negative(word: str) -> float:
    value = float(word)
    if not value >= 0:
        raise ValueError(word)
    return value


def _whole(word: str) -> int:
    value = int(word)
    if value < 0:
        raise ValueError(word)
    return value


_positive.__name__ = "number > 0"
_non_negative.__name__ = "number >= 0"
_whole.__name__ = "whole number >= 0"


def _shown_short(exc: BaseException) -> BaseException:
    """Make IPython show ``exc`` as one line, ``Type: message`` (and its notes), instead
    of a traceback through flowrra's frames; return ``exc``.

    IPython (and ipykernel) draw an exception through its ``_render_traceback_`` when it
    has one; the exception keeps its type, so callers may still catch it.
    """
    lines = [f"{type(exc).__name__}: {exc}", *getattr(exc, "__notes__", ())]
    exc._render_traceback_ = lambda: lines  # type: ignore[attr-defined]
    return exc


class _HelpShown(Exception):
    """``-h`` printed a subcommand's help: nothing else to do."""


class _Parser(argparse.ArgumentParser):
    """argparse for one subcommand: its SystemExit becomes a UsageError."""

    def parse(self, words: list[str]) -> argparse.Namespace:
        """Parse ``words``; a bad option or value raises UsageError with the valid ones."""
        err, out = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                return self.parse_intermixed_args(words)
        except SystemExit as exc:
            if exc.code == 0:
                print(out.getvalue(), end="")
                raise _HelpShown from None
            message = err.getvalue().strip().splitlines()[-1:] or ["invalid arguments"]
            raise UsageError(f"%{message[0]}\n\n{self.format_help()}") from None


def _parser(name: str, description: str) -> _Parser:
    # no "%" in prog: argparse formats usage strings with %
    return _Parser(prog=f"flowrra {name}", description=description, allow_abbrev=False)


def _task_options(parser: _Parser) -> None:
    parser.add_argument("--priority", type=int, default=0, help="lower runs first (default 0)")
    parser.add_argument("-o", "--out", metavar="VAR", help="store the result in VAR")


def _build_parsers() -> dict[str, _Parser]:
    parsers = {
        "start": _parser("start", "Start the app on flowrra's runtime thread."),
        "stop": _parser("stop", "Stop the app."),
        "use": _parser("use", "Make the app NAME the one the magics act on."),
        "submit": _parser("submit", "Submit TASK with arguments; return a TaskHandle."),
        "map": _parser("map", "Submit TASK once per item of ITERABLE; return TaskHandles."),
        "wait": _parser("wait", "Wait for tasks (default: every unfinished one)."),
        "status": _parser("status", "Show the live task table."),
        "results": _parser("results", "Task records as a DataFrame (all by default)."),
        "schedules": _parser("schedules", "The app's schedules as a DataFrame."),
        "schedule": _parser("schedule", "Schedule TASK by cron, interval or once."),
        "cancel": _parser("cancel", "Cancel tasks by id or handle."),
        "doctor": _parser("doctor", "Check the notebook traps and say how to fix each."),
        "task": _parser("task", "Register the function the cell defines as a task."),
    }
    parsers["stop"].add_argument("--no-wait", action="store_true", help="cancel unfinished tasks")
    parsers["stop"].add_argument(
        "--timeout",
        type=_non_negative,
        default=30.0,
        help="seconds to let tasks finish (default 30)",
    )
    parsers["use"].add_argument("name", help="a variable holding a Flowrra app")
    for name in ("submit", "schedule"):
        parsers[name].add_argument("task", help="a task name or function")
        parsers[name].add_argument("args", nargs="*", help="arguments (Python expressions)")
    _task_options(parsers["submit"])
    parsers["map"].add_argument("task", help="a task name or function")
    parsers["map"].add_argument("iterable", help="a Python expression")
    _task_options(parsers["map"])
    parsers["wait"].add_argument("targets", nargs="*", help="handles, lists of them, or ids")
    parsers["wait"].add_argument("--timeout", type=_positive, help="seconds to wait at most")
    parsers["status"].add_argument("--text", action="store_true", help="print text")
    parsers["results"].add_argument("--status", choices=TASK_STATUSES)
    parsers["results"].add_argument("--task", type=_text, help="a task name")
    parsers["results"].add_argument("--limit", type=_whole, help="rows at most")
    when = parsers["schedule"].add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", type=_text, help='a cron expression, quoted: "*/5 * * * *"')
    when.add_argument("--every", type=_positive, metavar="SECONDS", help="an interval")
    when.add_argument("--at", type=_text, metavar="ISO", help="once, at this local time")
    parsers["cancel"].add_argument("targets", nargs="+", help="handles or task ids")
    _cell_options(parsers["task"])
    return parsers


def _cell_options(parser: _Parser) -> None:
    parser.add_argument("--name", type=_text, help="task name (default: the function's)")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--cpu", action="store_true", help="run it in worker processes")
    kind.add_argument("--io", action="store_true", help="run it on the event loop")
    parser.add_argument("--retries", type=_whole, help="further attempts after a failure")
    parser.add_argument(
        "--retry-delay", type=_non_negative, metavar="S", help="seconds before the first retry"
    )
    parser.add_argument("--timeout", type=_positive, metavar="S", help="seconds per attempt")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _ids_in(value: Any) -> list[str]:
    """Task ids in a handle, an id, or a list of them."""
    if isinstance(value, TaskHandle):
        return [value.task_id]
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable):
        return [task_id for item in value for task_id in _ids_in(item)]
    raise UsageError(f"Not a task handle or id: {value!r}")


async def _wait_all(
    app: Flowrra, ids: list[str], on_done: Callable[[TaskResult], None], timeout: float | None
) -> list[TaskResult]:
    finished: set[str] = set()

    async def one(task_id: str) -> TaskResult:
        record = await app.wait_for_result(task_id)
        finished.add(task_id)
        on_done(record)
        return record

    try:
        async with asyncio.timeout(timeout):
            return await asyncio.gather(*(one(task_id) for task_id in ids))
    except TimeoutError:
        first = next(task_id for task_id in ids if task_id not in finished)
        raise TaskTimeoutError(first, timeout) from None


async def _unfinished_ids(app: Flowrra) -> list[str]:
    return [r.task_id for s in _LIVE for r in await app.list_results(s)]


@magics_class
class FlowrraMagics(Magics, Configurable):
    """The ``%flowrra`` magics; options are set with ``%config FlowrraMagics.NAME = VALUE``.

    Usage::

        %load_ext flowrra
        %config FlowrraMagics                  # list the options
        %config FlowrraMagics.refresh_hz = 2
        %flowrra start
        h = %flowrra submit add 1 2
    """

    refresh_hz = Float(
        4.0, help="Refreshes per second at most of the task table and progress bars (0-60]."
    ).tag(config=True)
    max_rows = Int(200, help="Rows shown at most by the task table (>= 1).").tag(config=True)
    noninteractive = Bool(
        help="Print text instead of widgets (default: the FLOWRRA_NONINTERACTIVE "
        "environment variable)."
    ).tag(config=True)
    default_executor = Enum(
        ["auto", "io", "cpu"],
        default_value="auto",
        help="Executor of %%flowrra task cells given neither --cpu nor --io: 'auto' "
        "picks io for async def and cpu for def.",
    ).tag(config=True)

    @default("noninteractive")
    def _noninteractive_from_env(self) -> bool:
        return _env_flag("FLOWRRA_NONINTERACTIVE")

    @validate("refresh_hz")
    def _check_refresh_hz(self, proposal: Any) -> float:
        value = proposal["value"]
        if not 0 < value <= 60:
            raise TraitError(f"refresh_hz must be > 0 and <= 60, got {value!r}")
        return value

    @validate("max_rows")
    def _check_max_rows(self, proposal: Any) -> int:
        value = proposal["value"]
        if value < 1:
            raise TraitError(f"max_rows must be at least 1, got {value!r}")
        return value

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        """Magics bound to ``shell`` (an IPython InteractiveShell)."""
        super().__init__(shell=shell, **kwargs)
        self._chosen: weakref.ref[Flowrra] | None = None
        self._tables: weakref.WeakKeyDictionary[Flowrra, Any] = weakref.WeakKeyDictionary()
        self._parsers = _build_parsers()
        self._commands: dict[str, Callable[[argparse.Namespace], Any]] = {
            "start": self._start,
            "stop": self._stop,
            "use": self._use,
            "submit": self._submit,
            "map": self._map,
            "wait": self._wait,
            "status": self._status,
            "results": self._results,
            "schedules": self._schedules,
            "schedule": self._schedule,
            "cancel": self._cancel,
            "doctor": self._doctor,
        }

    # ------------------------------------------------------------ the magic
    @no_var_expand
    @line_cell_magic
    def flowrra(self, line: str, cell: str | None = None) -> Any:
        """Drive a flowrra app from the notebook: ``%flowrra SUBCOMMAND ...``.

        Subcommands: start, stop, use, submit, map, wait, status, results, schedules,
        schedule, cancel, doctor; and ``%%flowrra task`` as a cell magic. Add ``-h`` to
        any of them for its options.
        """
        words = split_arguments(line)
        try:
            if cell is not None:
                return self._task_cell(words, cell)
            if words[:1] and words[0] in _HELP_WORDS:
                print(self.usage())
                return None
            if not words or words[0] not in self._commands:
                given = f"Unknown subcommand {words[0]!r}. " if words else ""
                raise UsageError(f"{given}{self.usage()}")
            args = self._parsers[words[0]].parse(words[1:])
            return self._commands[words[0]](args)
        except _HelpShown:
            return None
        except FlowrraError as exc:
            _shown_short(exc)
            raise

    def usage(self) -> str:
        """The subcommands and what each does."""
        lines = [f"  {name:<10} {p.description}" for name, p in self._parsers.items()]
        return (
            "Valid subcommands of %flowrra:\n"
            + "\n".join(lines)
            + "\nAdd -h after a subcommand for its options (%flowrra submit -h)."
        )

    # --------------------------------------------------------- current app
    def current_app(self) -> Flowrra:
        """The app the magics act on (see the module docstring).

        Raises:
            FlowrraError: there is no app to act on.
        """
        chosen = self._chosen() if self._chosen is not None else None
        if chosen is not None:
            return chosen
        latest = latest_app()
        if latest is None:
            raise FlowrraError(
                "No Flowrra app in this notebook: create one (app = Flowrra()) or name one "
                "with %flowrra use NAME"
            )
        return latest

    def _text_mode(self) -> bool:
        return self.noninteractive

    def _evaluate(self, word: str) -> Any:
        """The value of the Python expression ``word`` in the notebook's namespace; an
        error in it is shown short (see :func:`_shown_short`), with the word."""
        try:
            return self.shell.ev(word)
        except SyntaxError as exc:
            raise UsageError(f"Cannot read {word!r} as a Python expression: {exc.msg}") from None
        except Exception as exc:
            exc.add_note(f"(in the %flowrra argument {word!r})")
            raise _shown_short(exc) from None

    def _task(self, app: Flowrra, word: str) -> str | Callable[..., Any]:
        """A registered task given as its name (quoted or not) or as an expression.

        Raises:
            TaskNotFoundError: ``app`` has no such task (the message lists its tasks).
        """
        name = _text(word)
        if name in app.registry:
            return name
        if word[:1] in ("'", '"'):
            raise _not_registered(app, name)
        try:
            value = self._evaluate(word)
        except NameError:
            if word.isidentifier():
                raise _not_registered(app, word) from None
            raise
        if isinstance(value, str):
            if value not in app.registry:
                raise _not_registered(app, value)
            return value
        if callable(value):
            if app.registry.get(app.registry.name_of(value)) is not value:
                raise _not_registered(app, app.registry.name_of(value))
            return value
        raise UsageError(f"{word} is neither a task name nor a function")

    def _running_app(self) -> Flowrra:
        """The current app, which must be running (to submit to it).

        Raises:
            ExecutorNotRunningError: it is not; the message says %flowrra start.
        """
        app = self.current_app()
        if not app.is_running:
            raise ExecutorNotRunningError(_NOT_RUNNING)
        return app

    def _call_args(self, words: list[str]) -> tuple[list[Any], dict[str, Any]]:
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for word in words:
            key, sep, expr = word.partition("=")
            if sep and key.isidentifier() and not expr.startswith("="):
                kwargs[key] = self._evaluate(expr)
            else:
                args.append(self._evaluate(word))
        return args, kwargs

    def _store(self, name: str | None, value: Any) -> None:
        if name is None:
            return
        if not name.isidentifier():
            raise UsageError(f"-o needs a variable name, got {name!r}")
        self.shell.user_ns[name] = value

    # ---------------------------------------------------------- subcommands
    def _start(self, args: argparse.Namespace) -> None:
        app = self.current_app()
        executor = app.config.executor
        workers = f"{executor.io_workers} io, {executor.cpu_workers} cpu workers"
        if app.is_running:
            print(f"flowrra app already started ({workers}): nothing to do")
            return
        runtime.run_sync(app.start)
        print(f"flowrra app started on the runtime thread ({workers})")

    def _stop(self, args: argparse.Namespace) -> None:
        app = self.current_app()
        if not app.is_running:
            print("flowrra app already stopped (it is not running): nothing to do")
            return
        runtime.run_sync(app.stop, not args.no_wait, args.timeout)
        print("flowrra app stopped")

    def _use(self, args: argparse.Namespace) -> None:
        app = self._evaluate(args.name)
        if not isinstance(app, Flowrra):
            raise UsageError(f"{args.name} is a {type(app).__name__}, not a Flowrra app")
        self._chosen = weakref.ref(app)
        print(f"%flowrra now acts on {args.name}")

    def _submit(self, args: argparse.Namespace) -> TaskHandle:
        app = self._running_app()
        task = self._task(app, args.task)
        call_args, call_kwargs = self._call_args(args.args)
        submit = partial(app.submit, task, *call_args, priority=args.priority, **call_kwargs)
        handle = TaskHandle(app, _call_app(submit), _name_of(app, task))
        self._store(args.out, handle)
        return handle

    def _map(self, args: argparse.Namespace) -> TaskHandles:
        app = self._running_app()
        task = self._task(app, args.task)
        items = self._evaluate(args.iterable)
        ids = _call_app(partial(app.map, task, items, priority=args.priority))
        name = _name_of(app, task)
        handles = TaskHandles(TaskHandle(app, task_id, name) for task_id in ids)
        self._store(args.out, handles)
        return handles

    def _targets(self, app: Flowrra, words: list[str]) -> list[str]:
        """The task ids the words name (all unfinished ones for no words).

        Raises:
            UnknownTaskIdError: a word is neither a variable in the notebook nor an id
                the app has a record of.
        """
        if not words:
            return runtime.run_sync(_unfinished_ids, app)
        ids: list[str] = []
        bare: set[str] = set()  # ids given as unquoted words (maybe mistyped names)
        for word in words:
            known = word.isidentifier() and word in self.shell.user_ns
            if known or word[:1] in "[(":
                ids += _ids_in(self._evaluate(word))
            else:
                ids.append(_text(word))
                if word[:1] not in ("'", '"'):
                    bare.add(ids[-1])
        records = runtime.run_sync(_records_of, app, ids)
        unknown = [i for i, record in zip(ids, records, strict=True) if record is None]
        if unknown:
            raise _unknown_ids(unknown, bare)
        return ids

    def _wait(self, args: argparse.Namespace) -> None:
        app = self.current_app()
        ids = self._targets(app, args.targets)  # before any bar is drawn
        if not ids:
            print("Nothing to wait for: no unfinished tasks.")
            return
        progress = WaitProgress(len(ids), self._text_mode(), self.refresh_hz)
        future = runtime.submit(_wait_all, app, ids, progress.update, args.timeout)
        try:
            runtime.wait(future)
        except (KeyboardInterrupt, TimeoutError):  # only the wait ended, not the tasks
            progress.interrupted()
            raise
        progress.finish()

    def _status(self, args: argparse.Namespace) -> Any:
        app = self.current_app()
        if args.text or self._text_mode():
            state = TaskTableState(self.max_rows)
            state.reset(runtime.run_sync(load_snapshot, app, state, False))
            print(format_rows(state.counts, state.rows()))
            return None
        from flowrra.notebook.table import TaskTable

        previous = self._tables.get(app)
        if previous is not None:
            previous.close()  # re-running the cell replaces its table
        table = TaskTable(app, max_rows=self.max_rows, refresh_hz=self.refresh_hz)
        self._tables[app] = table
        return table

    def _results(self, args: argparse.Namespace) -> Any:
        app = self.current_app()
        return runtime.run_sync(app.results_frame, args.status, args.task, args.limit)

    def _scheduler(self, app: Flowrra) -> Any:
        if app.scheduler is None:
            raise FlowrraError(
                "This app has no scheduler: create one with app.create_scheduler() "
                "(before %flowrra start) to use %flowrra schedules and %flowrra schedule"
            )
        return app.scheduler

    def _schedules(self, args: argparse.Namespace) -> Any:
        return runtime.run_sync(self._scheduler(self.current_app()).schedules_frame)

    def _schedule(self, args: argparse.Namespace) -> Any:
        app = self.current_app()
        scheduler = self._scheduler(app)
        name = _name_of(app, self._task(app, args.task))
        call_args, call_kwargs = self._call_args(args.args)
        given: dict[str, Any] = {"args": call_args}
        if call_kwargs:
            given["kwargs"] = call_kwargs
        if args.cron is not None:
            call = partial(scheduler.schedule_cron, name, args.cron, **given)
        elif args.every is not None:
            call = partial(scheduler.schedule_interval, name, args.every, **given)
        else:
            call = partial(scheduler.schedule_once, name, _moment(args.at), **given)
        return runtime.run_sync(call)

    def _cancel(self, args: argparse.Namespace) -> None:
        app = self.current_app()
        for task_id in self._targets(app, args.targets):  # every id known, or none cancelled
            done = runtime.run_sync(app.cancel, task_id)
            print(f"{task_id}: {'cancelled' if done else 'not cancelled (already finished)'}")

    def _doctor(self, args: argparse.Namespace) -> DoctorReport | None:
        try:
            app: Flowrra | None = self.current_app()
        except FlowrraError:
            app = None
        report = diagnose(app)
        if self._text_mode():
            print(report)
            return None
        return report

    # ------------------------------------------------------- %%flowrra task
    def _task_cell(self, words: list[str], cell: str) -> None:
        if not words or words[0] != "task":
            raise UsageError("The cell magic is %%flowrra task [options]; see %%flowrra task -h")
        args = self._parsers["task"].parse(words[1:])
        app = self.current_app()
        source = self.shell.transform_cell(cell)
        functions = [
            node.name
            for node in ast.parse(source).body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        ]
        if not functions:
            raise UsageError("%%flowrra task: the cell defines no function (def at top level)")
        filename = self.shell.compile.cache(source)
        exec(compile(source, filename, "exec"), self.shell.user_global_ns, self.shell.user_ns)
        func = self.shell.user_ns[functions[-1]]
        self._register(app, func, args)

    def _register(self, app: Flowrra, func: Callable[..., Any], args: argparse.Namespace) -> None:
        name = args.name or func.__name__
        cpu = args.cpu or (not args.io and self._default_cpu(func))
        options = {
            key: value
            for key, value in (
                ("max_retries", args.retries),
                ("retry_delay", args.retry_delay),
                ("timeout", args.timeout),
            )
            if value is not None
        }
        app.registry.unregister(name)  # re-running the cell replaces the task
        app.task(name=name, cpu_bound=cpu, **options)(func)
        print(f"Registered task {name!r} ({'cpu' if cpu else 'io'})")

    def _default_cpu(self, func: Callable[..., Any]) -> bool:
        if self.default_executor != "auto":
            return self.default_executor == "cpu"
        import inspect

        return not inspect.iscoroutinefunction(func)


def _not_registered(app: Flowrra, name: str) -> TaskNotFoundError:
    """The error for a task ``app`` does not have, listing the ones it has."""
    names = app.registry.list_tasks()
    listing = ", ".join(names[:_LISTED_TASKS]) or "none yet"
    if len(names) > _LISTED_TASKS:
        listing += f" and {len(names) - _LISTED_TASKS} more"
    error = TaskNotFoundError(name)
    error.args = (
        f"Task {name!r} is not registered with this app (registered: {listing}). "
        "Register a function with @app.task() or a %%flowrra task cell.",
    )
    return error


def _unknown_ids(unknown: list[str], bare: set[str]) -> UnknownTaskIdError:
    """The error for ids the app has no record of; a bare word may be a mistyped name."""
    error = UnknownTaskIdError(unknown[0])
    first = unknown[0]
    if first in bare:
        text = (
            f"Unknown task id {first!r}, and no variable of that name in this notebook: "
            "give a handle, a list of handles, or the id of a task of this app "
            "(%flowrra results lists them)"
        )
    else:
        text = (
            f"Unknown task id {first!r}: it was never submitted to this app, or its record "
            "has expired (%flowrra results lists the app's tasks)"
        )
    if len(unknown) > 1:
        text += f" ({len(unknown) - 1} more unknown: {', '.join(map(repr, unknown[1:4]))}"
        text += ", ...)" if len(unknown) > 4 else ")"
    error.args = (text,)
    return error


async def _records_of(app: Flowrra, ids: list[str]) -> list[TaskResult | None]:
    return list(await asyncio.gather(*(app.get_result(task_id) for task_id in ids)))


def _call_app(call: Callable[[], Any]) -> Any:
    """Run an app coroutine that takes a task's arguments; a ``TypeError`` (arguments
    the task does not accept) is shown short, and "not running" names %flowrra start."""
    try:
        return runtime.run_sync(call)
    except ExecutorNotRunningError:
        raise ExecutorNotRunningError(_NOT_RUNNING) from None
    except TypeError as exc:
        raise _shown_short(exc) from None


def _name_of(app: Flowrra, task: str | Callable[..., Any]) -> str:
    """The name ``task`` has in ``app`` (a function may have another in another app)."""
    return task if isinstance(task, str) else app.registry.name_of(task)


def _moment(text: str) -> datetime:
    try:
        return ensure_aware(datetime.fromisoformat(text))
    except ValueError:
        raise UsageError(
            f"--at needs an ISO date and time (2026-01-31T09:00), got {text!r}"
        ) from None


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics and their configurable (what ``%load_ext flowrra`` calls); in a
    kernel, keep per-task log lines out of the cells (see :mod:`~flowrra.notebook.kernel_apps`)."""
    unload_ipython_extension(ipython)  # loading twice replaces the first
    if runtime.in_kernel():
        keep_task_logs_out_of_cells()
    magics = FlowrraMagics(shell=ipython, config=ipython.config)
    ipython.register_magics(magics)
    ipython.configurables.append(magics)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics' configurable (``%unload_ext flowrra``)."""
    for configurable in [c for c in ipython.configurables if isinstance(c, FlowrraMagics)]:
        ipython.configurables.remove(configurable)
