"""Kept for flowrra 0.1.8 code: ``from flowrra.scheduler.scheduler import Scheduler``.

The scheduler lives in :mod:`flowrra.scheduler.service`; this module re-exports it under
its 0.1.8 path, with the names 0.1.8's module made importable from there (the models,
the cron expression, the backend base class and the task registry).
"""

from flowrra.registry import TaskRegistry
from flowrra.scheduler.backends.base import BaseSchedulerBackend
from flowrra.scheduler.cron import CronExpression
from flowrra.scheduler.models import ScheduledTask, ScheduleType
from flowrra.scheduler.service import Scheduler

__all__ = [
    "BaseSchedulerBackend",
    "CronExpression",
    "ScheduleType",
    "ScheduledTask",
    "Scheduler",
    "TaskRegistry",
]
