"""``flowrra dashboard``: serve the web dashboard of an app with uvicorn.

Usage::

    flowrra dashboard --app myproject.tasks:app              # http://127.0.0.1:5555
    FLOWRRA_DASHBOARD_TOKEN=... flowrra dashboard --app myproject.tasks:app --host 0.0.0.0

On a Redis broker the dashboard shows the whole deployment (every worker's tasks, earlier
runs' records, workers); it runs no tasks itself. On the in-memory defaults it runs the
app's workers in its own process.
"""

from __future__ import annotations

import argparse
import logging
import sys

from flowrra.exceptions import FlowrraError
from flowrra.web.security import TOKEN_ENV, is_loopback, resolve_token

__all__ = ["PROG", "add_arguments", "run_dashboard"]

PROG = "flowrra dashboard"

DESCRIPTION = """\
Serve a web dashboard for a Flowrra app: a live task table (filters, sorting, details
with arguments, result and traceback, cancel), schedules (create cron, interval and
one-time schedules, enable, disable, delete, run history), workers (host, pid, queues,
tasks running, last heartbeat; lost ones marked) and an overview (throughput, failures,
queue depth). Also a JSON API under /api and task events over a WebSocket at /ws.
It listens on 127.0.0.1 unless told otherwise; on any other address it needs a token."""

EPILOG = f"""\
examples:
  flowrra dashboard --app myproject.tasks:app
  {TOKEN_ENV}=... flowrra dashboard --app myproject.tasks:app --host 0.0.0.0 --port 8080"""


def port_number(text: str) -> int:
    """``--port``: 1 to 65535."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535)")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``flowrra dashboard`` options, description and examples to ``parser``."""
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--app", required=True, metavar="MODULE:ATTRIBUTE",
        help="the app to show, e.g. myproject.tasks:app",
    )  # fmt: skip
    parser.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1; any other needs --token)",
    )  # fmt: skip
    parser.add_argument(
        "--port", type=port_number, default=5555, help="port to listen on (default: 5555)"
    )  # fmt: skip
    parser.add_argument(
        "--token", default=None,
        help=f"token every request must carry (default: ${TOKEN_ENV}); prefer the variable, "
        "as command lines are visible to other users",
    )  # fmt: skip
    parser.add_argument(
        "--loglevel", default="warning", choices=("debug", "info", "warning", "error"),
        type=str.lower, help="log level (default: warning)",
    )  # fmt: skip


def run_dashboard(args: argparse.Namespace) -> int:
    """Run ``flowrra dashboard`` until SIGINT/SIGTERM; return the exit status."""
    token = resolve_token(args.token)
    if token is None and not is_loopback(args.host):
        print(
            f"{PROG}: listening on {args.host} needs a token; set {TOKEN_ENV} (or pass "
            "--token) and give it to the people who may use the dashboard",
            file=sys.stderr,
        )
        return 2
    try:
        import uvicorn
    except ImportError:
        print(
            f"{PROG}: uvicorn is not installed; pip install -e '.[dashboard]' in flowrra's clone",
            file=sys.stderr,
        )
        return 1
    from flowrra.loading import load_app
    from flowrra.web.server import create_app

    try:
        app = load_app(args.app)
        asgi = create_app(app, token=token, manage_app=True)
    except FlowrraError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.loglevel.upper(), format="%(asctime)s %(name)s: %(message)s")
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"{PROG}: serving {args.app} on http://{shown}:{args.port}/", file=sys.stderr)
    config = uvicorn.Config(
        asgi, host=args.host, port=args.port, log_level=args.loglevel, lifespan="on"
    )
    try:
        uvicorn.Server(config).run()
    except FlowrraError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    return 0
