"""Where the front-end files of flowrra's faces are: the task table's ES module and
stylesheet, shared by the notebook widget and the web dashboard.

They live in the repository's top-level ``widgets/`` folder. A wheel carries them as
``flowrra/notebook/widgets/`` (hatch ``force-include``); an editable install finds them
in the checkout. :func:`widget_file` is the one place that knows both.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["WIDGET_FILES", "widget_file", "widget_file_candidates"]

#: The front-end files the task table needs.
WIDGET_FILES = ("task_table.js", "task_table.css")

_PACKAGE = Path(__file__).resolve().parent


def widget_file_candidates(name: str) -> list[Path]:
    """Where ``name`` is looked for, in order: inside the installed package (a wheel),
    then the checkout's ``widgets/`` folder (an editable install)."""
    return [_PACKAGE / "notebook" / "widgets" / name, _PACKAGE.parent / "widgets" / name]


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
        "flowrra from its clone (pip install -e '.[notebook]'), and make sure the "
        "checkout's widgets/ folder is there."
    )
