"""``flowrra worker``: run an app's tasks from its Redis broker, in this process.

Usage::

    FLOWRRA_SECRET_KEY=... flowrra worker --app myproject.tasks:app --io-workers 16

The app is imported from ``module:attribute``; it must be configured with a Redis broker
and backend and share its secret key with the processes that submit.

Expected failures (a bad option, an ``--app`` that cannot be loaded, Redis unreachable)
end the command with one line on stderr, ``flowrra worker: <what went wrong>; <what to
do>``, and exit status 2 (a usage error) or 1 (a failure while running); only a bug in
flowrra itself shows a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import signal
import sys

from flowrra.app import Flowrra
from flowrra.exceptions import BackendError, BrokerError, ConfigError, FlowrraError
from flowrra.loading import load_app as _load_app
from flowrra.redis_client import redacted

__all__ = ["WorkerSetupError", "add_arguments", "load_app", "run_worker"]

logger = logging.getLogger("flowrra.worker")

PROG = "flowrra worker"
LOG_LEVELS = ("debug", "info", "warning", "error")
QUEUE_KINDS = ("io", "cpu")

DESCRIPTION = """\
Run the tasks of a Flowrra app in this process: take them from the app's Redis broker,
run them (IO tasks on the event loop, CPU tasks in worker processes) and store their
results in its Redis backend, where the processes that submitted them wait. The app must
be configured with a Redis broker and backend, and share its secret key
(FLOWRRA_SECRET_KEY) with the processes that submit. SIGINT or SIGTERM stops the worker
after its running tasks finish (up to --drain-timeout seconds)."""

EPILOG = """\
examples:
  FLOWRRA_SECRET_KEY=... flowrra worker --app myproject.tasks:app
  flowrra worker --app myproject.tasks:app --queues cpu --cpu-workers 8
  flowrra worker --app myproject.tasks:app --io-workers 32 --lease 60 --loglevel debug"""


class WorkerSetupError(ConfigError):
    """The worker cannot start with what it was given; the message says what to do."""


# ------------------------------------------------------------------ option types
def _log_level(text: str) -> str:
    """``--loglevel``: one of debug, info, warning, error in any case; the logging name."""
    word = text.strip().lower()
    if word not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a log level; use one of {', '.join(LOG_LEVELS)}"
        )
    return word.upper()


def _seconds(text: str) -> float:
    """``text`` as a finite number of seconds, else NaN (which every check refuses)."""
    try:
        value = float(text)
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def _positive_seconds(text: str) -> float:
    """``--lease``: a finite number of seconds greater than 0."""
    value = _seconds(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive number of seconds; use e.g. 30 or 2.5"
        )
    return value


def _non_negative_seconds(text: str) -> float:
    """``--drain-timeout``: a finite number of seconds, 0 or more."""
    value = _seconds(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds (0 or more); use e.g. 30"
        )
    return value


def _positive_count(text: str) -> int:
    """``--io-workers`` and ``--cpu-workers``: a whole number, at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _queue_kinds(text: str) -> frozenset[str]:
    """``--queues``: io, cpu or io,cpu (in any order and case)."""
    kinds = frozenset(q.strip().lower() for q in text.split(",") if q.strip())
    if not kinds or kinds - set(QUEUE_KINDS):
        raise argparse.ArgumentTypeError(f"{text!r} is not a queue list; use io, cpu or io,cpu")
    return kinds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``flowrra worker`` options (and its description and examples) to
    ``parser``; each option checks its value, so a bad one is a usage error."""
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--app", required=True, metavar="MODULE:ATTRIBUTE",
        help="the app to run, e.g. myproject.tasks:app (imported from the current folder "
        "or PYTHONPATH)",
    )  # fmt: skip
    parser.add_argument(
        "--io-workers", type=_positive_count, metavar="N",
        help="IO tasks run at once (default: the app's ExecutorConfig.io_workers)",
    )  # fmt: skip
    parser.add_argument(
        "--cpu-workers", type=_positive_count, metavar="N",
        help="CPU worker processes (default: the app's ExecutorConfig.cpu_workers)",
    )  # fmt: skip
    parser.add_argument(
        "--queues", type=_queue_kinds, default=frozenset(QUEUE_KINDS), metavar="KINDS",
        help="which queues to take tasks from: io, cpu or io,cpu (default: io,cpu)",
    )  # fmt: skip
    parser.add_argument(
        "--lease", type=_positive_seconds, metavar="SECONDS",
        help="seconds a taken task stays leased without a heartbeat before another worker "
        "may take it (default: the broker's)",
    )  # fmt: skip
    parser.add_argument(
        "--drain-timeout", type=_non_negative_seconds, default=30.0, metavar="SECONDS",
        help="seconds running tasks may take to finish on shutdown (default: 30)",
    )  # fmt: skip
    parser.add_argument(
        "--loglevel", type=_log_level, default="INFO", metavar="LEVEL",
        help=f"{', '.join(LOG_LEVELS)} (any case; default: info)",
    )  # fmt: skip


# ----------------------------------------------------------------- loading the app
def load_app(spec: str) -> Flowrra:
    """Import ``module:attribute`` and return the Flowrra app it names.

    Raises:
        WorkerSetupError: ``spec`` is not ``module:attribute``, the module cannot be
            imported, or the attribute is missing or not a Flowrra app.
    """
    return _load_app(spec, WorkerSetupError)


def _configure(app: Flowrra, args: argparse.Namespace) -> set[str]:
    """Check the app can serve as a worker and apply the options; return the queue kinds."""
    config = app.config
    if config.broker is None:
        raise WorkerSetupError(
            "the app has no Redis broker to take tasks from; configure it with "
            "BrokerConfig(url='redis://...') and BackendConfig(url='redis://...') "
            "(or FLOWRRA_BROKER_URL and FLOWRRA_BACKEND_URL with Config.from_env())"
        )
    if app.secret_is_generated:
        raise WorkerSetupError(
            "the app has no secret key, so it cannot verify the tasks that other processes "
            "sign; set the same FLOWRRA_SECRET_KEY (at least 16 characters, e.g. from "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`) here and where "
            "tasks are submitted, or pass Config(secret_key=...)"
        )
    if args.io_workers is not None:
        config.executor.io_workers = args.io_workers
    if args.cpu_workers is not None:
        config.executor.cpu_workers = args.cpu_workers
        app.cpu_executor.pool.size = args.cpu_workers
    if args.lease is not None:
        for executor in (app.io_executor, app.cpu_executor):
            executor.broker.lease = args.lease  # type: ignore[union-attr]
    return set(args.queues)


# ------------------------------------------------------------------------ running
async def _let_go(app: Flowrra) -> None:
    """Close the Redis clients a failed start made, so nothing else is printed at exit."""
    for executor in (app.io_executor, app.cpu_executor):
        with contextlib.suppress(Exception):
            await executor.broker.close()  # type: ignore[union-attr]
    with contextlib.suppress(Exception):
        await app.results_backend.close()


async def _serve(app: Flowrra, kinds: set[str], drain_timeout: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await app.start(workers=kinds)  # nothing is logged before: a failure is one line
    except BaseException:
        await _let_go(app)
        raise
    config = app.config
    logger.info(
        "worker %d ready: broker %s, queues %s, io_workers=%d, cpu_workers=%d, tasks: %s",
        os.getpid(), redacted(config.broker.url), ",".join(sorted(kinds)),  # type: ignore[union-attr]
        config.executor.io_workers, config.executor.cpu_workers,
        ", ".join(app.registry.list_tasks()) or "(none registered)",
    )  # fmt: skip
    await stop.wait()
    logger.info("shutting down: finishing running tasks (up to %gs)", drain_timeout)
    await app.stop(wait=True, timeout=drain_timeout)
    logger.info("worker %d stopped", os.getpid())


def _with_advice(exc: FlowrraError) -> str:
    """The message of a failure while running, with what to do when Redis is out of
    reach (the error names the URL, its password hidden)."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    lost = (OSError, RedisConnectionError, RedisTimeoutError)
    if isinstance(exc, BrokerError | BackendError) and isinstance(exc.__cause__, lost):
        return (
            f"{exc}; check that Redis runs there and that the app's URL (BrokerConfig / "
            "BackendConfig, or FLOWRRA_BROKER_URL / FLOWRRA_BACKEND_URL) is right"
        )
    return str(exc)


def _fail(message: str, status: int) -> int:
    """Print ``message`` as the one line of a failed ``flowrra worker``; return ``status``."""
    line = " ".join(message.splitlines())  # one line, whatever the error's text holds
    print(f"{PROG}: {line}", file=sys.stderr)
    return status


def run_worker(args: argparse.Namespace) -> int:
    """Run ``flowrra worker`` with parsed ``args``; return the exit status.

    0 after a clean shutdown (SIGINT or SIGTERM); 2 when the app cannot be loaded or
    cannot serve as a worker; 1 when it fails while starting or running (e.g. Redis is
    unreachable). Each failure is one line on stderr that says what to do.
    """
    logging.basicConfig(
        level=args.loglevel, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        app = load_app(args.app)
        kinds = _configure(app, args)
    except FlowrraError as exc:
        return _fail(str(exc), 2)
    except KeyboardInterrupt:
        return _fail("interrupted while loading the app", 130)
    try:
        asyncio.run(_serve(app, kinds, args.drain_timeout))
    except FlowrraError as exc:
        return _fail(_with_advice(exc), 1)
    return 0
