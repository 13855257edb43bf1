"""Where the task table's front-end files (an ES module and a stylesheet) are.

They live in the repository's top-level ``widgets/`` folder. A wheel carries them as
``flowrra/notebook/widgets/`` (hatch ``force-include``); an editable install finds them
in the checkout. :func:`widget_file` is the one place that knows both.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["WIDGET_FILES", "widget_file", "widget_file_candidates"]

#: The front-end files the task table needs.
WIDGET_FILES = ("task_table.js", "task_table.css")

_HERE = Path(__file__).resolve().parent


def widget_file_candidates(name: str) -> list[Path]:
    """Where ``name`` is looked for, in order: inside the installed package (a wheel),
    then the checkout's ``widgets/`` folder (an editable install)."""
    return [_HERE / "widgets" / name, _HERE.parent.parent / "widgets" / name]


def widget_file(name: str) -> Path:
    """The path of the front-end file ``name`` (one of :data:`WIDGET_FILES`).

    Raises:
        FileNotFoundError: neither location has it; the message says how to fix it.
    """
    candidates = widget_file_candidates(name)
    for path in candidates:
        if path.is_file():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise FileNotFoundError(
        f"flowrra's widget file {name!r} is missing (looked in {tried}). Reinstall "
        "flowrra (pip install --force-reinstall 'flowrra[notebook]'), or for a checkout "
        "make sure its widgets/ folder is there."
    )
