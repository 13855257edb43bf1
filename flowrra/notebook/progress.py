"""The progress bar of ``%flowrra wait``: a widget, or one line of text at the end.

:class:`WaitProgress` is told about each finished task from the runtime loop (the cell
that waits is blocked) and redraws at most ``refresh_hz`` times a second. The bar's
label says ``waiting`` while it waits, ``done`` once every task finished, and
``stopped`` when Ctrl-C or the timeout ended the wait (the tasks go on).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from flowrra.notebook.table_state import format_duration
from flowrra.task import TaskResult

__all__ = ["WaitProgress"]


class WaitProgress:
    """Counts finished tasks and shows it (``text=True``: a summary line at the end).

    Usage::

        progress = WaitProgress(total=10, text=False, refresh_hz=4)
        progress.update(record)          # from the runtime loop, per finished task
        progress.finish()                # prints the summary
    """

    def __init__(self, total: int, text: bool, refresh_hz: float = 4.0) -> None:
        """Show progress towards ``total`` tasks."""
        self.total = total
        self.done = 0
        self.statuses: Counter[str] = Counter()
        self._interval = 1.0 / refresh_hz
        self._last = 0.0
        self._started = time.perf_counter()
        self._bar: Any = None
        self._label: Any = None
        if not text:
            self._show_widget()

    def _show_widget(self) -> None:
        import ipywidgets
        from IPython.display import display

        self._bar = ipywidgets.IntProgress(
            value=0, min=0, max=max(self.total, 1), description="waiting", bar_style="info"
        )
        self._label = ipywidgets.Label(self._line())
        display(ipywidgets.HBox([self._bar, self._label]))

    def _line(self) -> str:
        detail = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))
        return f"{self.done}/{self.total} done" + (f" ({detail})" if detail else "")

    def update(self, record: TaskResult) -> None:
        """One more task finished (called on the runtime loop)."""
        self.done += 1
        self.statuses[record.status.value] += 1
        now = time.perf_counter()
        if self._bar is not None and (
            now - self._last >= self._interval or self.done >= self.total
        ):
            self._last = now
            self._draw()

    def _draw(self, style: str | None = None, description: str | None = None) -> None:
        if self._bar is None:
            return
        with self._bar.hold_sync():
            self._bar.value = self.done
            if style is not None:
                self._bar.bar_style = style
            if description is not None:
                self._bar.description = description
        self._label.value = self._line()

    @property
    def description(self) -> str | None:
        """The word beside the bar: waiting, done or stopped (None without a widget)."""
        return None if self._bar is None else self._bar.description

    def summary(self) -> str:
        """One line: how many finished, how, and how long the wait took."""
        took = format_duration(time.perf_counter() - self._started)
        return f"{self._line()} after {took}"

    def finish(self) -> None:
        """The wait is over: the bar says done in its final colour; print the summary."""
        failed = self.statuses["failed"] + self.statuses["cancelled"]
        self._draw("danger" if failed else "success", "done")
        print(self.summary())

    def interrupted(self) -> None:
        """Ctrl-C or the timeout ended the wait: say the tasks go on."""
        self._draw("warning", "stopped")
        print(f"Stopped waiting at {self._line()}; the tasks go on running.")
