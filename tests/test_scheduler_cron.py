"""Cron expressions: croniter's standard semantics, clear errors, and time zones across
daylight-saving changes."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from flowrra.scheduler import CronExpression, ScheduleError
from flowrra.scheduler.cron import local_timezone_name, resolve_timezone


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def runs(cron: CronExpression, start: datetime, count: int) -> list[datetime]:
    found = []
    for _ in range(count):
        start = cron.next_run(start)
        found.append(start)
    return found


def test_fields_and_sets_as_in_0_1_8() -> None:
    cron = CronExpression("*/15 9-17 1,15 * 1-5", "UTC")
    assert (cron.minute_field, cron.hour_field, cron.day_field) == ("*/15", "9-17", "1,15")
    assert (cron.month_field, cron.weekday_field) == ("*", "1-5")
    assert cron.minutes == {0, 15, 30, 45} and cron.hours == set(range(9, 18))
    assert cron.days == {1, 15} and cron.months == set(range(1, 13))
    assert cron.weekdays == {1, 2, 3, 4, 5}
    assert CronExpression("0 0 * * 7", "UTC").weekdays == {0}
    assert str(cron) == "*/15 9-17 1,15 * 1-5"
    assert repr(cron) == "CronExpression('*/15 9-17 1,15 * 1-5', timezone='UTC')"
    assert CronExpression("  0   9 * *  * ", "UTC") == CronExpression("0 9 * * *", "UTC")


def test_names_and_macros() -> None:
    start = utc(2024, 1, 1)  # a Monday
    assert runs(CronExpression("0 9 * * mon-fri", "UTC"), utc(2024, 1, 5, 10), 1) == [
        utc(2024, 1, 8, 9)
    ]
    assert runs(CronExpression("0 0 1 jan *", "UTC"), start, 1) == [utc(2025, 1, 1)]
    assert runs(CronExpression("@daily", "UTC"), start, 2) == [utc(2024, 1, 2), utc(2024, 1, 3)]
    assert runs(CronExpression("@HOURLY", "UTC"), start, 1) == [utc(2024, 1, 1, 1)]
    assert CronExpression("@weekly", "UTC").hour_field == "0"


def test_day_of_month_or_day_of_week() -> None:
    """Both restricted: either matches (Vixie cron), not both (0.1.8's bug)."""
    cron = CronExpression("0 0 13 * fri", "UTC")
    found = runs(cron, utc(2024, 9, 1), 4)
    assert found == [utc(2024, 9, 6), utc(2024, 9, 13), utc(2024, 9, 20), utc(2024, 9, 27)]
    assert cron.matches(utc(2024, 9, 13, 0, 0, 30))  # a Friday the 13th too
    assert not cron.matches(utc(2024, 9, 14))


def test_next_is_strictly_after_previous_is_at_or_before() -> None:
    cron = CronExpression("0 9 * * *", "UTC")
    assert cron.next_run(utc(2024, 1, 1, 9)) == utc(2024, 1, 2, 9)
    assert cron.next_run(utc(2024, 1, 1, 8, 59, 59, 999999)) == utc(2024, 1, 1, 9)
    assert cron.previous_run(utc(2024, 1, 1, 9)) == utc(2024, 1, 1, 9)
    assert cron.previous_run(utc(2024, 1, 1, 8, 59)) == utc(2023, 12, 31, 9)
    assert cron.previous_runs(utc(2024, 1, 3, 10), 5, since=utc(2024, 1, 2)) == [
        utc(2024, 1, 3, 9),
        utc(2024, 1, 2, 9),
    ]
    assert cron.next_run().tzinfo is UTC


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "Expected 5 fields"),
        ("* * * * * *", "Expected 5 fields"),
        ("61 * * * *", "bad minute field '61'"),
        ("0 24 * * *", "bad hour field '24'"),
        ("*/0 * * * *", "bad minute field"),
        ("0 0 * * funday", "bad day of week field"),
        ("0 0 32 * *", "bad day of month field"),
        ("@reboot", "unknown macro"),
        ("0 0 31 2 *", "never matches"),
        ("", "Expected 5 fields"),
    ],
)
def test_invalid_expressions_are_clear_value_errors(expression: str, message: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ScheduleError, match=message) as info:
        CronExpression(expression, "UTC")
    assert isinstance(info.value, ValueError)
    assert time.perf_counter() - started < 0.5


def test_time_zones() -> None:
    assert resolve_timezone("Europe/Berlin")[0] == "Europe/Berlin"
    assert resolve_timezone(UTC)[0] == "UTC"
    assert resolve_timezone(None)[0] == local_timezone_name()
    with pytest.raises(ScheduleError, match="Unknown time zone 'Mars/Olympus'"):
        CronExpression("0 9 * * *", "Mars/Olympus")
    cron = CronExpression("0 9 * * *", "Asia/Tokyo")
    assert cron.next_run(utc(2024, 5, 31, 12)) == utc(2024, 6, 1, 0)  # 09:00 JST


def test_berlin_daily_run_follows_summer_time() -> None:
    cron = CronExpression("0 9 * * *", "Europe/Berlin")
    assert runs(cron, utc(2024, 3, 29, 12), 3) == [
        utc(2024, 3, 30, 8),  # CET, UTC+1
        utc(2024, 3, 31, 7),  # CEST, UTC+2 from that night
        utc(2024, 4, 1, 7),
    ]
    assert runs(cron, utc(2024, 10, 26, 12), 2) == [utc(2024, 10, 27, 8), utc(2024, 10, 28, 8)]


def test_a_time_skipped_by_spring_forward_runs_at_the_jump() -> None:
    cron = CronExpression("30 2 * * *", "America/New_York")
    assert runs(cron, utc(2024, 3, 9, 12), 3) == [
        utc(2024, 3, 10, 7),  # 02:30 does not exist: 03:00 EDT, once
        utc(2024, 3, 11, 6, 30),
        utc(2024, 3, 12, 6, 30),
    ]
    every_half_hour = CronExpression("*/30 * * * *", "America/New_York")
    assert runs(every_half_hour, utc(2024, 3, 10, 6, 15), 3) == [
        utc(2024, 3, 10, 6, 30),  # 01:30 EST
        utc(2024, 3, 10, 7),  # 03:00 EDT
        utc(2024, 3, 10, 7, 30),
    ]


def test_a_time_repeated_by_fall_back_runs_once_unless_the_hour_is_a_wildcard() -> None:
    daily = CronExpression("30 1 * * *", "America/New_York")
    assert runs(daily, utc(2024, 11, 2, 12), 2) == [
        utc(2024, 11, 3, 5, 30),  # 01:30 EDT only, not again at 01:30 EST
        utc(2024, 11, 4, 6, 30),
    ]
    assert daily.previous_runs(utc(2024, 11, 4, 12), 3) == [
        utc(2024, 11, 4, 6, 30),
        utc(2024, 11, 3, 5, 30),
        utc(2024, 11, 2, 5, 30),
    ]
    beat = CronExpression("*/30 * * * *", "America/New_York")
    assert runs(beat, utc(2024, 11, 3, 4, 50), 5) == [
        utc(2024, 11, 3, 5),  # 01:00 EDT
        utc(2024, 11, 3, 5, 30),
        utc(2024, 11, 3, 6),  # 01:00 EST: the hour repeats, and so do the runs
        utc(2024, 11, 3, 6, 30),
        utc(2024, 11, 3, 7),
    ]
    assert beat.next_run(utc(2024, 11, 3, 6, 10)) == utc(2024, 11, 3, 6, 30)


def test_naive_datetimes_are_local_time() -> None:
    cron = CronExpression("0 * * * *", "UTC")
    naive = datetime(2024, 5, 1, 10, 30)
    assert cron.next_run(naive) == cron.next_run(naive.astimezone())
    assert cron.matches(datetime(2024, 5, 1, 10, 0).astimezone()) is True
    assert timedelta(0) < cron.next_run(naive) - naive.astimezone() <= timedelta(hours=1)
