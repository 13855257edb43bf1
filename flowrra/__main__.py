"""The ``flowrra`` command (also ``python -m flowrra``).

- ``flowrra demo``: run a small workload on the embedded defaults and print a table.
- ``flowrra worker --app module:app``: run an app's tasks from its Redis broker.
- ``flowrra dashboard --app module:app``: serve the app's web dashboard.
- ``flowrra --version``: print ``flowrra <version>``.

A usage error (an unknown command, a bad option value) is one line on stderr,
``flowrra worker: <what went wrong>; <what to do>``, with exit status 2; ``flowrra`` with
no command prints its help and exits with 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import NoReturn

__all__ = ["main"]

DEMO_DESCRIPTION = """\
Run a small, realistic workload on the embedded defaults (an in-memory queue and results,
no server needed): 32 IO tasks (24 "downloads", some failing and retried with backoff,
and 8 "parses", one failing for good) and 4 "reports" as CPU tasks in worker processes.
A progress line follows the app's events, and a table of every task's result is printed
at the end."""

DEMO_EPILOG = """\
example:
  flowrra demo"""

EPILOG = """\
examples:
  flowrra demo
  FLOWRRA_SECRET_KEY=... flowrra worker --app myproject.tasks:app
  flowrra dashboard --app myproject.tasks:app
  flowrra worker --help"""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line: the command's name once, what
    went wrong, and where to read more (argparse prints the usage and "error:" too)."""

    def error(self, message: str) -> NoReturn:
        """Print ``<prog>: <message>; see '<prog> --help'`` to stderr and exit with 2."""
        self.exit(2, f"{self.prog}: {message}; see '{self.prog} --help'\n")


def _version() -> str:
    """The installed distribution's version, else the package's own."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("flowrra")
    except PackageNotFoundError:
        from flowrra import __version__

        return __version__


def _parser() -> argparse.ArgumentParser:
    """The ``flowrra`` parser, with a subparser (of the same class) per command."""
    parser = _Parser(
        prog="flowrra",
        description="flowrra: an asyncio task queue at home in Jupyter.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"flowrra {_version()}",
        help="print flowrra's version and exit",
    )  # fmt: skip
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "demo",
        help="run a small workload on the embedded defaults (no server needed)",
        description=DEMO_DESCRIPTION,
        epilog=DEMO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from flowrra.worker import add_arguments

    add_arguments(commands.add_parser("worker", help="run an app's tasks from its Redis broker"))
    from flowrra.web.cli import add_arguments as add_dashboard_arguments  # no Starlette import

    add_dashboard_arguments(
        commands.add_parser(
            "dashboard", help="serve the web dashboard of an app (tasks, schedules, workers)"
        )
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``flowrra`` command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from flowrra.demo import main as demo_main

        logging.basicConfig(level=logging.ERROR)  # retries are shown by the progress line
        return demo_main()
    if args.command == "worker":
        from flowrra.worker import run_worker

        return run_worker(args)
    if args.command == "dashboard":
        from flowrra.web.cli import run_dashboard

        return run_dashboard(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
