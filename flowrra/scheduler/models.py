"""Schedules as records: what to run and when (:class:`ScheduledTask`), what happened when
it ran (:class:`ScheduleRun`), and the errors of the scheduler.

Errors::

    FlowrraError
    ├── ScheduleError (ValueError)      a schedule that cannot be made or found
    └── BackendError
        └── SchedulerBackendError        the schedule database failed or is unreachable
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any

from flowrra.clock import utcnow
from flowrra.exceptions import BackendError, FlowrraError

__all__ = [
    "DEFAULT_MAX_CATCHUP",
    "DEFAULT_MISSED_RUNS",
    "MissedRunPolicy",
    "RunCompletion",
    "RunOutcome",
    "ScheduleError",
    "ScheduleRun",
    "ScheduleType",
    "ScheduledTask",
    "SchedulerBackendError",
    "definition_key",
    "dump_json",
]


class ScheduleError(FlowrraError, ValueError):
    """A schedule that cannot be made or found: an unregistered task, an invalid cron
    expression or time zone, an interval of zero or less, an unknown schedule id.

    A ``ValueError``, as in flowrra 0.1.8. Nothing is written when it is raised.
    """


class SchedulerBackendError(BackendError):
    """The schedule database failed or could not be reached (the message names its URL,
    never its password)."""


class ScheduleType(Enum):
    """How a schedule's run times are defined."""

    CRON = "cron"
    INTERVAL = "interval"
    ONE_TIME = "one_time"


class MissedRunPolicy(StrEnum):
    """What a schedule does with runs whose time passed while no scheduler could fire them.

    - ``SKIP``: drop them; fire only the most recent one, and only if it is at most the
      scheduler's ``grace_period`` late.
    - ``RUN_ONCE`` (the default): fire once for all of them, straight away.
    - ``RUN_ALL``: fire each of them, oldest first, at most ``max_catchup`` (the most
      recent ones).

    Either way the schedule then continues with its first run time after now.
    """

    SKIP = "skip"
    RUN_ONCE = "run_once"
    RUN_ALL = "run_all"


class RunOutcome(StrEnum):
    """What happened to one due run."""

    SUBMITTED = "submitted"
    FAILED = "failed"
    SKIPPED = "skipped"


DEFAULT_MISSED_RUNS = MissedRunPolicy.RUN_ONCE
DEFAULT_MAX_CATCHUP = 100


def dump_json(value: Any) -> str:
    """Canonical JSON (sorted keys, no spaces): the form arguments are stored and keyed in."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def definition_key(
    task_name: str,
    schedule_type: ScheduleType,
    schedule: str,
    timezone: str | None,
    args: tuple | list,
    kwargs: dict,
) -> str:
    """The identity of a schedule's definition (SHA-256 hex): same task, schedule, time zone,
    args and kwargs give the same key. The databases hold it under a unique index."""
    text = dump_json([task_name, schedule_type.value, schedule, timezone or "", list(args), kwargs])
    return hashlib.sha256(text.encode()).hexdigest()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


@dataclass
class ScheduledTask:
    """One schedule: which task to run with which arguments, and when.

    ``schedule`` is the canonical text of the definition: the cron expression
    (whitespace normalised), the interval in seconds (``"60"``, ``"0.5"``) or the one-time
    run time (ISO 8601, UTC). Datetimes are aware UTC. ``max_retries``, ``retry_delay``
    and ``timeout`` of None mean the task's own defaults; ``priority`` follows the
    executors (lower runs first). Fields from ``timeout`` on are additions of flowrra 0.2;
    ``lease_owner`` / ``lease_until`` say which scheduler is firing it right now.
    """

    id: str
    task_name: str
    schedule_type: ScheduleType
    schedule: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    enabled: bool = True
    last_run_at: datetime | None = None
    next_run_at: datetime | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    description: str | None = None
    max_retries: int | None = None
    retry_delay: float | None = None
    priority: int = 0
    timeout: float | None = None
    timezone: str | None = None
    missed_runs: MissedRunPolicy = DEFAULT_MISSED_RUNS
    max_catchup: int = DEFAULT_MAX_CATCHUP
    lease_owner: str | None = None
    lease_until: datetime | None = None

    @property
    def definition_key(self) -> str:
        """See :func:`definition_key`."""
        return definition_key(
            self.task_name, self.schedule_type, self.schedule, self.timezone, self.args, self.kwargs
        )

    def to_dict(self) -> dict[str, Any]:
        """The schedule as a JSON-ready dict (a method, as in flowrra 0.1.8): enums as their
        values, ``args`` as a list and datetimes as ISO strings."""
        return {
            "id": self.id,
            "task_name": self.task_name,
            "schedule_type": self.schedule_type.value,
            "schedule": self.schedule,
            "args": list(self.args),
            "kwargs": self.kwargs,
            "enabled": self.enabled,
            "last_run_at": _iso(self.last_run_at),
            "next_run_at": _iso(self.next_run_at),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "description": self.description,
            "max_retries": self.max_retries,
            "retry_delay": self.retry_delay,
            "priority": self.priority,
            "timeout": self.timeout,
            "timezone": self.timezone,
            "missed_runs": self.missed_runs.value,
            "max_catchup": self.max_catchup,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScheduledTask:
        """Build a schedule from :meth:`to_dict` output (or a database row)."""
        return cls(
            id=data["id"],
            task_name=data["task_name"],
            schedule_type=ScheduleType(data["schedule_type"]),
            schedule=data["schedule"],
            args=tuple(data.get("args") or ()),
            kwargs=dict(data.get("kwargs") or {}),
            enabled=bool(data.get("enabled", True)),
            last_run_at=_dt(data.get("last_run_at")),
            next_run_at=_dt(data.get("next_run_at")),
            created_at=_dt(data.get("created_at")) or utcnow(),
            updated_at=_dt(data.get("updated_at")) or utcnow(),
            description=data.get("description"),
            max_retries=data.get("max_retries"),
            retry_delay=data.get("retry_delay"),
            priority=int(data.get("priority") or 0),
            timeout=data.get("timeout"),
            timezone=data.get("timezone"),
            missed_runs=MissedRunPolicy(data.get("missed_runs") or DEFAULT_MISSED_RUNS),
            max_catchup=int(data.get("max_catchup") or DEFAULT_MAX_CATCHUP),
            lease_owner=data.get("lease_owner"),
            lease_until=_dt(data.get("lease_until")),
        )


@dataclass
class ScheduleRun:
    """One entry of a schedule's run history: the run due at ``due_at``, fired at
    ``fired_at`` by ``scheduler`` as task ``task_id`` (None unless submitted)."""

    schedule_id: str
    due_at: datetime
    fired_at: datetime
    task_id: str | None
    outcome: RunOutcome
    error: str | None = None
    scheduler: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The run as a JSON-ready dict."""
        return {
            "schedule_id": self.schedule_id,
            "due_at": _iso(self.due_at),
            "fired_at": _iso(self.fired_at),
            "task_id": self.task_id,
            "outcome": self.outcome.value,
            "error": self.error,
            "scheduler": self.scheduler,
        }


@dataclass
class RunCompletion:
    """What a scheduler writes back after firing a claimed schedule: its new
    ``last_run_at`` (None keeps the old one) and ``next_run_at``, whether it stays enabled
    (False after a one-time run), the runs to add to its history, and ``retry_at``: when
    a run could not be submitted, no scheduler claims the schedule again before then."""

    schedule_id: str
    last_run_at: datetime | None
    next_run_at: datetime | None
    keep_enabled: bool
    runs: list[ScheduleRun] = field(default_factory=list)
    retry_at: datetime | None = None
