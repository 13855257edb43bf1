"""The ``flowrra`` command (also ``python -m flowrra``).

- ``flowrra demo``: run a small workload on the embedded defaults and print a table.
- ``flowrra worker --app module:app``: run an app's tasks from its Redis broker.
"""

from __future__ import annotations

import argparse
import logging
import sys

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowrra", description="flowrra: an asyncio task queue at home in Jupyter."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "demo", help="run a small workload on the embedded defaults (no server needed)"
    )
    from flowrra.worker import add_arguments

    add_arguments(commands.add_parser("worker", help="run an app's tasks from its Redis broker"))
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
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
