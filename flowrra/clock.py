"""The one place flowrra reads the clock: aware UTC datetimes inside."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

__all__ = ["UTC", "as_seconds", "ensure_aware", "timestamp", "utcnow"]


def utcnow() -> datetime:
    """Return the current time as a time-zone aware UTC datetime."""
    return datetime.now(UTC)


def timestamp() -> float:
    """Return the current time as seconds since the epoch (what :func:`utcnow` gives as a
    number, without making a datetime)."""
    return time.time()


def ensure_aware(value: datetime) -> datetime:
    """Return ``value`` as an aware datetime; a naive one is taken as local time."""
    if value.tzinfo is None:
        return value.astimezone()  # naive -> local zone, the user's wall clock
    return value


def as_seconds(value: float | int | timedelta, name: str) -> float:
    """Normalise a duration given as seconds or a ``timedelta`` to float seconds."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds or a timedelta, got {value!r}")
    return float(value)
