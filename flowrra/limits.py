"""Throttling vocabulary: a task's rate limit and concurrency cap, and unique-job keys.

- :class:`Rate` is a rate of starts read from ``"N/s"``, ``"N/m"`` or ``"N/h"``; starts
  are spaced evenly, one every :attr:`Rate.interval` seconds (a generic cell rate
  algorithm, as Celery spaces a ``rate_limit``). A start may come up to
  :attr:`Rate.slack` early, to make up for one a worker took late (and, for rates above
  25 a second, to let a worker take a few at once), so the rate over time is the limit
  and never more;
- :class:`TaskLimits` is what travels with a task to the worker that runs it: its rate
  and how many tasks of its name may run at once, for the whole deployment on Redis
  (the limiter lives in Redis) and per app in memory;
- :class:`UniqueKey` is a per-submit ``unique_key`` and how long it also covers the
  task once finished (``unique_for``).

The limiters themselves live where tasks wait: :mod:`flowrra.executors.throttle` in
memory and :mod:`flowrra.brokers.redis_limits` in Redis (in Lua); both do the
arithmetic of :func:`rate_wait` and :func:`rate_granted`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta

from flowrra.exceptions import ConfigError

__all__ = [
    "Rate",
    "TaskLimits",
    "UniqueKey",
    "override_limits",
    "rate_granted",
    "rate_wait",
    "task_limits",
]

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|m|h)\s*$")
_PERIOD = {"s": 1.0, "m": 60.0, "h": 3600.0}
_FORMAT = "'N/s', 'N/m' or 'N/h' with N > 0 (e.g. '10/s', '100/m', '1000/h')"
#: Longest a start may come early to make up for a late one (seconds).
_MAX_SLACK = 1.0
#: A start may always come this early (seconds): at high rates a worker takes the starts
#: due within it at once, instead of one per round trip to Redis.
_MIN_SLACK = 0.02


@dataclass(frozen=True, slots=True)
class Rate:
    """A rate of starts: ``count`` per ``period`` seconds.

    Usage::

        Rate.parse("10/s").interval   # 0.1: one start every tenth of a second
    """

    count: float
    period: float

    @classmethod
    def parse(cls, text: str | Rate, what: str = "rate_limit") -> Rate:
        """Read ``"N/s"``, ``"N/m"`` or ``"N/h"``; :class:`ConfigError` naming the format
        for anything else."""
        if isinstance(text, Rate):
            return text
        match = _RATE.match(text) if isinstance(text, str) else None
        count = float(match.group(1)) if match else 0.0
        if match is None or not math.isfinite(count) or count <= 0:
            raise ConfigError(f"{what} must be a string {_FORMAT}; got {text!r}")
        return cls(count, _PERIOD[match.group(2)])

    @property
    def interval(self) -> float:
        """Seconds between two starts."""
        return self.period / self.count

    @property
    def slack(self) -> float:
        """Seconds a start may come early: half an interval, at least 20 ms, at most 1 s."""
        return min(max(self.interval / 2, _MIN_SLACK), _MAX_SLACK)

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "m", 3600.0: "h"}.get(self.period)
        return f"{self.count:g}/{unit}" if unit else f"{self.count:g} per {self.period:g}s"


def rate_wait(tat: float, now: float, rate: Rate) -> float:
    """Seconds until ``rate`` lets a task start (0: now), given the theoretical arrival
    time ``tat`` of the next start (0 when nothing started yet)."""
    return max(0.0, tat - rate.slack - now)


def rate_granted(tat: float, now: float, rate: Rate) -> float:
    """The theoretical arrival time after a start granted at ``now``."""
    return max(tat, now) + rate.interval


@dataclass(frozen=True, slots=True)
class TaskLimits:
    """How a task is held back: at most ``rate`` starts and ``concurrency`` running at
    once, counted over every task of its name. None means no limit of that kind."""

    rate: Rate | None = None
    concurrency: int | None = None

    def field(self, name: str) -> str:
        """The plain-text form kept in Redis beside a queued task:
        ``interval|slack|concurrency|name`` (0 for no limit)."""
        rate = self.rate
        interval, slack = (rate.interval, rate.slack) if rate is not None else (0.0, 0.0)
        return f"{interval!r}|{slack!r}|{self.concurrency or 0}|{name}"

    def __str__(self) -> str:
        parts = []
        if self.rate is not None:
            parts.append(f"rate_limit={str(self.rate)!r}")
        if self.concurrency is not None:
            parts.append(f"concurrency={self.concurrency}")
        return ", ".join(parts)


def _concurrency(value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"concurrency must be a whole number >= 1 or None, got {value!r}")
    return value


def task_limits(rate_limit: str | Rate | None, concurrency: int | None) -> TaskLimits | None:
    """The :class:`TaskLimits` of these options; None when neither is given.

    Raises:
        ConfigError: a rate that is not ``"N/s|m|h"`` or a concurrency below 1.
    """
    rate = None if rate_limit is None else Rate.parse(rate_limit)
    cap = _concurrency(concurrency)
    if rate is None and cap is None:
        return None
    return TaskLimits(rate, cap)


def override_limits(base: TaskLimits | None, override: TaskLimits | None) -> TaskLimits | None:
    """A task's limits with a submit's ``override`` laid over its registered ``base``:
    each limit the submit gives replaces the task's own."""
    if override is None:
        return base
    if base is None:
        return override
    return TaskLimits(
        override.rate if override.rate is not None else base.rate,
        override.concurrency if override.concurrency is not None else base.concurrency,
    )


@dataclass(frozen=True, slots=True)
class UniqueKey:
    """A submit's ``unique_key``, and ``keep``: seconds it also covers the task after it
    ended (0: freed when it ends)."""

    key: str
    keep: float = 0.0

    @classmethod
    def of(cls, key: str | None, unique_for: float | timedelta | None) -> UniqueKey | None:
        """Check ``apply``'s ``unique_key`` and ``unique_for``; None without a key.

        Raises:
            ConfigError: an empty or non-string key, ``unique_for`` without a key, or
                ``unique_for`` that is not a number of seconds >= 0 (or a timedelta).
        """
        if key is None:
            if unique_for is not None:
                raise ConfigError("unique_for needs a unique_key")
            return None
        if not isinstance(key, str) or not key:
            raise ConfigError(f"unique_key must be a non-empty string, got {key!r}")
        keep = 0.0 if unique_for is None else _seconds(unique_for)
        if isinstance(keep, bool) or not isinstance(keep, int | float) or not 0 <= keep < math.inf:
            raise ConfigError(
                f"unique_for must be seconds >= 0 (or a timedelta), got {unique_for!r}"
            )
        return cls(key, float(keep))


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else value
