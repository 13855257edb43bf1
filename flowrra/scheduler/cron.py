"""Cron expressions: a thin face over croniter, evaluated in an IANA time zone.

Semantics are those of standard (Vixie) cron:

- five fields, ``minute hour day-of-month month day-of-week``; names (``mon``, ``jan``),
  ranges, lists and steps; ``0`` and ``7`` are Sunday; the macros ``@yearly``,
  ``@annually``, ``@monthly``, ``@weekly``, ``@daily``, ``@midnight`` and ``@hourly``;
- when both day-of-month and day-of-week are restricted, a day matches if **either**
  matches (``0 0 13 * fri`` runs on every 13th and every Friday);
- times are wall-clock times of the schedule's time zone (``zoneinfo``). When clocks go
  forward, a time inside the skipped hour runs at the moment of the jump; when clocks go
  back, a time that occurs twice runs once (at its first occurrence), unless the hour
  field is ``*``: then it runs at both real occurrences, so ``*/15 * * * *`` keeps its
  15-minute beat through the change.

Every datetime returned is aware and in UTC.
"""

from __future__ import annotations

import contextlib
import os
from datetime import datetime, timedelta, tzinfo
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from flowrra.clock import UTC, ensure_aware, utcnow
from flowrra.scheduler.models import ScheduleError

__all__ = ["MACROS", "CronExpression", "local_timezone_name", "resolve_timezone"]

#: Cron macros and the five-field expressions they stand for.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_MICRO = timedelta(microseconds=1)
_MAX_STEPS = 8  # DST duplicates skipped in a row before giving up (one per folded slot)


def local_timezone_name() -> str:
    """The IANA name of this machine's time zone (``TZ``, then ``/etc/localtime``), or UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        target = str(Path("/etc/localtime").resolve())
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text().strip())
    for name in candidates:
        if name and _zone_or_none(name) is not None:
            return name
    return "UTC"


def _zone_or_none(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def resolve_timezone(name: str | tzinfo | None) -> tuple[str, ZoneInfo]:
    """``(name, ZoneInfo)`` for an IANA name, a ``ZoneInfo``, or None (this machine's zone).

    Raises:
        ScheduleError: ``name`` is not a known IANA time zone.
    """
    if name is None:
        name = local_timezone_name()
    elif isinstance(name, ZoneInfo):
        name = name.key
    elif isinstance(name, tzinfo):
        if name.utcoffset(None) == timedelta(0):
            name = "UTC"
        else:
            raise ScheduleError(
                f"Time zone {name!r} has no IANA name; pass one such as 'Europe/Berlin'"
            )
    zone = _zone_or_none(name) if isinstance(name, str) else None
    if zone is None:
        raise ScheduleError(
            f"Unknown time zone {name!r}: expected an IANA name such as 'UTC' or 'Europe/Berlin'"
        )
    return name, zone


def _normalise(expression: object) -> str:
    if not isinstance(expression, str):
        raise ScheduleError(f"A cron expression must be a string, got {type(expression).__name__}")
    text = " ".join(expression.split())
    lowered = text.lower()
    if lowered.startswith("@"):
        if lowered not in MACROS:
            raise ScheduleError(
                f"Invalid cron expression {expression!r}: unknown macro; known macros are "
                f"{', '.join(MACROS)}"
            )
        return lowered
    fields = text.split(" ") if text else []
    if len(fields) != 5:
        raise ScheduleError(
            f"Invalid cron expression {expression!r}. Expected 5 fields (minute hour day "
            f"month weekday) or a macro such as @daily, got {len(fields)}"
        )
    return text


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NAMES: dict[int, dict[str, int]] = {
    3: {name: number for number, name in enumerate(_MONTHS, 1)},
    4: {name: number for number, name in enumerate(_DAYS)},
}


def _bound(text: str, index: int) -> int | None:
    """A range end as a number (names allowed in the month and day-of-week fields)."""
    if text.isdigit():
        return int(text)
    return _NAMES.get(index, {}).get(text.lower())


def _reversed_range(value: str, index: int) -> tuple[str, str] | None:
    """The first range ``a-b`` (as written) in a field with ``a`` after ``b``, or None. In the
    day-of-week field an end of 0 or ``sun`` means Sunday as 7 (``sat-sun`` is fine)."""
    for part in value.split(","):
        start, dash, end = part.split("/", 1)[0].partition("-")
        first, last = _bound(start, index), _bound(end, index)
        if not dash or first is None or last is None:
            continue  # not a range, or croniter reports what does not parse
        if index == 4 and last == 0:
            last = 7
        if first > last:
            return start, end
    return None


def _check_ranges(five: str, original: str) -> None:
    """croniter wraps a reversed range (``10-5`` as 10-59 and 0-5); standard cron and
    flowrra 0.1.8 reject it, and so do we, saying how to write what was meant."""
    for index, (value, name) in enumerate(zip(five.split(" "), _FIELD_NAMES, strict=True)):
        found = _reversed_range(value, index)
        if found is None:
            continue
        first, last = found
        low, high = _RANGES[index]
        raise ScheduleError(
            f"Invalid cron expression {original!r}: {name} field: range {first}-{last} is "
            f"reversed (its start is after its end); write {last}-{first}, or "
            f"{first}-{high},{low}-{last} to wrap around"
        )


def _check(expression: str, original: str) -> None:
    five = MACROS.get(expression, expression)
    _check_ranges(five, original)
    if not croniter.is_valid(five):
        for value, name, (low, high) in zip(five.split(" "), _FIELD_NAMES, _RANGES, strict=True):
            if not croniter.is_valid(" ".join("*" if f != name else value for f in _FIELD_NAMES)):
                raise ScheduleError(
                    f"Invalid cron expression {original!r}: bad {name} field {value!r} "
                    f"(numbers {low}-{high}, names, ranges a-b, lists a,b and steps */n)"
                )
        raise ScheduleError(f"Invalid cron expression {original!r}")


@lru_cache(maxsize=1024)
def _expanded(expression: str) -> tuple[list, ...]:
    return tuple(croniter.expand(MACROS.get(expression, expression))[0])


class CronExpression:
    """A validated cron expression in a time zone, with its next and previous run times.

    Usage::

        cron = CronExpression("0 9 * * mon-fri", timezone="Europe/Berlin")
        cron.next_run()                      # the next 09:00 Berlin time, in UTC
        cron.previous_run(some_utc_time)     # the latest run at or before it

    ``timezone`` is an IANA name (default: this machine's zone, as flowrra 0.1.8 used
    local time). An invalid expression or zone raises
    :class:`~flowrra.scheduler.models.ScheduleError`, a ``ValueError``.
    """

    def __init__(self, expression: str, timezone: str | tzinfo | None = None) -> None:
        """Parse and validate ``expression``; see the class docstring."""
        text = _normalise(expression)
        _check(text, expression)
        self.expression = text
        self.timezone, self.zone = resolve_timezone(timezone)
        fields = MACROS.get(text, text).split(" ")
        (
            self.minute_field,
            self.hour_field,
            self.day_field,
            self.month_field,
            self.weekday_field,
        ) = fields
        self._both_folds = self.hour_field == "*"
        try:
            self.next_run(datetime(2000, 1, 1, tzinfo=UTC))
        except ScheduleError:
            raise ScheduleError(
                f"Invalid cron expression {expression!r}: it never matches a real date"
            ) from None

    # ------------------------------------------------------------ 0.1.8 views
    def _set(self, index: int) -> set[int]:
        values = _expanded(self.expression)[index]
        low, high = _RANGES[index]
        if values == ["*"]:
            return set(range(low, high + 1))
        return {0 if (index == 4 and v == 7) else v for v in values if isinstance(v, int)}

    @property
    def minutes(self) -> set[int]:
        """The minutes (0-59) the expression matches."""
        return self._set(0)

    @property
    def hours(self) -> set[int]:
        """The hours (0-23) the expression matches."""
        return self._set(1)

    @property
    def days(self) -> set[int]:
        """The days of the month (1-31) the expression matches."""
        return self._set(2)

    @property
    def months(self) -> set[int]:
        """The months (1-12) the expression matches."""
        return self._set(3)

    @property
    def weekdays(self) -> set[int]:
        """The days of the week (0-6, 0 = Sunday) the expression matches."""
        return self._set(4)

    # ------------------------------------------------------------------ times
    def _is_second_fold(self, when: datetime) -> bool:
        """True for the repeated occurrence of a wall time when clocks went back."""
        wall = when.astimezone(self.zone)
        return wall.fold == 1 and wall.replace(fold=0).utcoffset() != wall.utcoffset()

    def _step(self, start: datetime, backwards: bool) -> datetime:
        local = start.astimezone(self.zone)
        it = croniter(MACROS.get(self.expression, self.expression), local)
        get = it.get_prev if backwards else it.get_next
        for _ in range(_MAX_STEPS):
            try:
                found = get(datetime)
            except CroniterError as exc:
                raise ScheduleError(f"Cron expression {self.expression!r}: {exc}") from None
            if self._both_folds or not self._is_second_fold(found):
                return found.astimezone(UTC)
        raise ScheduleError(f"Cron expression {self.expression!r}: no run time near {start}")

    def next_run(self, after: datetime | None = None) -> datetime:
        """The first run time strictly after ``after`` (default: now), aware UTC.

        A naive ``after`` is taken as local time.
        """
        start = utcnow() if after is None else ensure_aware(after)
        return self._step(start, backwards=False)

    def previous_run(self, at_or_before: datetime | None = None) -> datetime:
        """The latest run time at or before ``at_or_before`` (default: now), aware UTC."""
        start = utcnow() if at_or_before is None else ensure_aware(at_or_before)
        return self._step(start + _MICRO, backwards=True)

    def previous_runs(
        self, at_or_before: datetime, limit: int, since: datetime | None = None
    ) -> list[datetime]:
        """Up to ``limit`` run times at or before ``at_or_before`` and not before ``since``,
        newest first."""
        runs: list[datetime] = []
        start = ensure_aware(at_or_before) + _MICRO
        for _ in range(limit):
            start = self._step(start, backwards=True)
            if since is not None and start < since:
                break
            runs.append(start)
        return runs

    def matches(self, when: datetime) -> bool:
        """True if ``when`` (to the minute; naive = local time) is a run time."""
        moment = ensure_aware(when).replace(second=0, microsecond=0)
        return self.previous_run(moment) == moment.astimezone(UTC)

    def __str__(self) -> str:
        return self.expression

    def __repr__(self) -> str:
        return f"CronExpression({self.expression!r}, timezone={self.timezone!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CronExpression):
            return NotImplemented
        return (self.expression, self.timezone) == (other.expression, other.timezone)

    def __hash__(self) -> int:
        return hash((self.expression, self.timezone))
