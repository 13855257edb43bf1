"""Persistent scheduling: cron, interval and one-time schedules in SQLite, PostgreSQL or
MySQL, each due run fired exactly once however many schedulers share the database.

Usage::

    scheduler = app.create_scheduler()            # SQLite at .flowrra_schedule.db
    await scheduler.schedule_cron("send_report", "0 9 * * mon-fri", timezone="Europe/Paris")
    await scheduler.schedule_interval("poll_feeds", 300)
    await app.start()                             # starts the scheduler too
"""

from flowrra.scheduler.cron import CronExpression
from flowrra.scheduler.models import (
    MissedRunPolicy,
    RunOutcome,
    ScheduledTask,
    ScheduleError,
    SchedulerBackendError,
    ScheduleRun,
    ScheduleType,
)
from flowrra.scheduler.service import Scheduler, SubmitTask

__all__ = [
    "CronExpression",
    "MissedRunPolicy",
    "RunOutcome",
    "ScheduleError",
    "ScheduleRun",
    "ScheduleType",
    "ScheduledTask",
    "Scheduler",
    "SchedulerBackendError",
    "SubmitTask",
]
