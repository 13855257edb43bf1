"""Formatting values for display: dates, durations and status colours (0.1.8's
``Formatter``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flowrra.constants import STATUS_COLORS

__all__ = ["Formatter"]


class Formatter:
    """Static helpers that turn values into short display strings.

    Usage::

        Formatter.format_datetime(record.finished_at)   # "2026-03-01 09:30:00"
        Formatter.format_duration(150)                  # "2.5m"
        Formatter.get_status_color("FAILED")            # "red"
    """

    @staticmethod
    def format_datetime(dt: Any) -> str:
        """``"Never"`` for None, a string unchanged, a datetime as
        ``%Y-%m-%d %H:%M:%S``, anything else as ``str()``."""
        if dt is None:
            return "Never"
        if isinstance(dt, str):
            return dt
        if isinstance(dt, datetime):
            return dt.strftime("%Y-%m-%d %H:%M:%S")
        return str(dt)

    @staticmethod
    def format_duration(seconds: float | None) -> str:
        """Seconds below a minute as ``"45.5s"``, below an hour in minutes (``"2.5m"``),
        else in hours (``"2.0h"``), one decimal each; ``"-"`` for None."""
        if seconds is None:
            return "-"
        if seconds < 60:
            return f"{seconds:.1f}s"
        if seconds < 3600:
            return f"{seconds / 60:.1f}m"
        return f"{seconds / 3600:.1f}h"

    @staticmethod
    def get_status_color(status: str) -> str:
        """The colour name of a task status (any case); ``"gray"`` for an unknown one."""
        return STATUS_COLORS.get(str(status).lower(), "gray")
