"""``flowrra worker``: run an app's tasks from its Redis broker, in this process.

Usage::

    FLOWRRA_SECRET_KEY=... flowrra worker --app myproject.tasks:app --io-workers 16

The app is imported from ``module:attribute``; it must be configured with a Redis broker
and backend and share its secret key with the processes that submit.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys

from flowrra.app import Flowrra
from flowrra.redis_client import redacted

__all__ = ["add_arguments", "load_app", "run_worker"]

logger = logging.getLogger("flowrra.worker")


class WorkerSetupError(Exception):
    """The worker cannot start; the message says what to do."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``flowrra worker`` options to ``parser``."""
    parser.add_argument("--app", required=True, help="the app to run, as module:attribute")
    parser.add_argument("--io-workers", type=int, help="IO tasks run at once (default: config)")
    parser.add_argument("--cpu-workers", type=int, help="CPU worker processes (default: config)")
    parser.add_argument(
        "--queues", default="io,cpu", help="which queues to take from: io, cpu or io,cpu"
    )
    parser.add_argument(
        "--lease", type=float, help="seconds a taken task stays leased without a heartbeat"
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=30.0, help="seconds to finish tasks on shutdown"
    )
    parser.add_argument("--loglevel", default="info", help="debug, info, warning or error")


def load_app(spec: str) -> Flowrra:
    """Import ``module:attribute`` and return the Flowrra app it names."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise WorkerSetupError(f"--app must look like module:attribute, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise WorkerSetupError(f"Cannot import {module_name!r}: {exc}") from exc
    app = getattr(module, attribute, None)
    if not isinstance(app, Flowrra):
        raise WorkerSetupError(f"{spec} is {type(app).__name__}, not a Flowrra app")
    return app


def _configure(app: Flowrra, args: argparse.Namespace) -> set[str]:
    config = app.config
    if config.broker is None:
        raise WorkerSetupError(
            "flowrra worker needs a Redis broker: configure the app with "
            "BrokerConfig(url='redis://...') and BackendConfig(url='redis://...') "
            "(or FLOWRRA_BROKER_URL and FLOWRRA_BACKEND_URL with Config.from_env())"
        )
    if app.secret_is_generated:
        raise WorkerSetupError(
            "flowrra worker needs the secret key the submitting processes use to sign "
            "tasks: set the same FLOWRRA_SECRET_KEY (at least 16 characters, e.g. from "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`) for both, or pass "
            "Config(secret_key=...)"
        )
    kinds = {q.strip() for q in args.queues.split(",") if q.strip()}
    if not kinds or kinds - {"io", "cpu"}:
        raise WorkerSetupError(f"--queues takes io, cpu or io,cpu; got {args.queues!r}")
    if args.io_workers is not None:
        config.executor.io_workers = args.io_workers
    if args.cpu_workers is not None:
        config.executor.cpu_workers = args.cpu_workers
        app.cpu_executor.pool.size = args.cpu_workers
    config.executor.__post_init__()
    if args.lease is not None:
        for executor in (app.io_executor, app.cpu_executor):
            executor.broker.lease = args.lease  # type: ignore[union-attr]
    return kinds


async def _serve(app: Flowrra, kinds: set[str], drain_timeout: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await app.start(workers=kinds)
    config = app.config
    logger.info(
        "flowrra worker %d ready: broker %s, queues %s, io_workers=%d, cpu_workers=%d, "
        "tasks: %s",
        os.getpid(), redacted(config.broker.url), ",".join(sorted(kinds)),  # type: ignore[union-attr]
        config.executor.io_workers, config.executor.cpu_workers,
        ", ".join(app.registry.list_tasks()) or "(none registered)",
    )  # fmt: skip
    await stop.wait()
    logger.info("Shutting down: finishing running tasks (up to %ss)", drain_timeout)
    await app.stop(wait=True, timeout=drain_timeout)
    logger.info("flowrra worker %d stopped", os.getpid())


def run_worker(args: argparse.Namespace) -> int:
    """Run ``flowrra worker`` with parsed ``args``; return the exit status."""
    logging.basicConfig(
        level=args.loglevel.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        app = load_app(args.app)
        kinds = _configure(app, args)
    except (WorkerSetupError, ValueError) as exc:
        print(f"flowrra worker: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_serve(app, kinds, args.drain_timeout))
    return 0
