"""What the dashboard shows, as JSON-ready dicts: no web framework in here.

:class:`DashboardData` answers every page and API call of the dashboard (and of the
0.1.8 ``flowrra.ui`` adapters) from a :class:`~flowrra.app.Flowrra` app: task records
paged and filtered on the server, counts per status, schedules, workers and an overview.
Values are made safe for JSON (datetimes as ISO strings, any other object as a short
``repr``); escaping for HTML is the page's job (it only ever sets ``textContent``).
"""

from __future__ import annotations

import itertools
import math
import reprlib
import time
from collections import deque
from datetime import date, datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

from flowrra.constants import STATUS_COLORS, TASK_STATUSES
from flowrra.exceptions import FlowrraError
from flowrra.management import FlowrraManager
from flowrra.task import TaskResult, TaskStatus

if TYPE_CHECKING:
    from flowrra.app import Flowrra

__all__ = ["DashboardData", "jsonable", "record_row"]

_REPR = reprlib.Repr()
_REPR.maxstring = 200
_REPR.maxother = 200
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = 20
_ERROR_CHARS = 300
_PAGE_MAX = 500
_SAMPLES = 720  # overview points kept (one per sample period: an hour at 5 s)


def jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` as something :func:`json.dumps` takes: datetimes become ISO strings,
    enums their value, containers are converted item by item (to a depth of 6), and any
    other object becomes its short ``repr``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Enum):
        return jsonable(value.value, depth)
    if depth < 6:
        if isinstance(value, dict):
            return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [jsonable(v, depth + 1) for v in value]
    return _REPR.repr(value)


def _call_repr(record: TaskResult) -> str:
    parts = [_REPR.repr(a) for a in record.args]
    parts += [f"{k}={_REPR.repr(v)}" for k, v in (record.kwargs or {}).items()]
    return ", ".join(parts)


def _seconds(record: TaskResult) -> float | None:
    if record.started_at is None or record.finished_at is None:
        return None
    return (record.finished_at - record.started_at).total_seconds()


def record_row(record: TaskResult) -> dict[str, Any]:
    """One row of the task table for ``record`` (the same fields the notebook table
    shows, ``args`` (a call-like repr, the table's args column), plus ``args_repr`` and
    ``attempt``)."""
    error = record.error
    call = _call_repr(record)
    return {
        "task_id": record.task_id,
        "task_name": record.task_name,
        "status": record.status.value,
        "submitted_at": jsonable(record.submitted_at),
        "started_at": jsonable(record.started_at),
        "finished_at": jsonable(record.finished_at),
        "duration": _seconds(record),
        "retries": record.retries,
        "attempt": record.retries + 1,
        "priority": record.priority,
        "error": error[:_ERROR_CHARS] if isinstance(error, str) else error,
        "error_type": record.error_type,
        "args": f"({call})",
        "args_repr": call,
        "progress": record.progress,
        "progress_message": record.progress_message,
        "workflow_id": record.workflow_id,
        "workflow_step": record.workflow_step,
    }


def record_detail(record: TaskResult) -> dict[str, Any]:
    """Everything about one task: the row plus arguments, result, error, traceback,
    progress and output."""
    return {
        **record_row(record),
        "error": record.error,
        "args": jsonable(list(record.args)),
        "kwargs": jsonable(record.kwargs),
        "result": jsonable(record.result),
        "result_repr": _REPR.repr(record.result) if record.result is not None else None,
        "traceback": record.traceback,
        "progress_done": jsonable(record.progress_done),
        "progress_total": jsonable(record.progress_total),
        "output": record.output,
    }


def _number(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _status(value: str | None) -> TaskStatus | None:
    if not value:
        return None
    try:
        return TaskStatus(value.lower())
    except ValueError:
        known = ", ".join(TASK_STATUSES)
        raise FlowrraError(f"Unknown task status {value!r}: use one of {known}.") from None


class DashboardData:
    """The dashboard's answers for one app.

    Usage::

        data = DashboardData(app)
        page = await data.tasks_page(status="failed", limit=50)
        await data.cancel(page["rows"][0]["task_id"])
    """

    def __init__(self, app: Flowrra) -> None:
        """Answer for ``app`` (started or not: records are read from its backend)."""
        self.app = app
        self.manager = FlowrraManager(app)
        self._samples: deque[dict[str, Any]] = deque(maxlen=_SAMPLES)

    # ------------------------------------------------------------------ tasks
    async def counts(self, task_name: str | None = None) -> dict[str, int]:
        """Records per status (all records, or one task name's)."""
        backend = self.app.results_backend
        counter = getattr(backend, "count_by_status", None)
        if task_name is None and counter is not None:
            counts = counter()
            if not isinstance(counts, dict):
                counts = await counts
            return {s: int(counts.get(s, 0)) for s in TASK_STATUSES}
        counted = getattr(backend, "count_results", None)
        if counted is not None:
            return {s: await counted(TaskStatus(s), task_name) for s in TASK_STATUSES}
        counts = dict.fromkeys(TASK_STATUSES, 0)
        for record in await self.app.list_results(task_name=task_name):
            counts[record.status.value] += 1
        return counts

    async def tasks_page(
        self,
        status: str | None = None,
        task_name: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> dict[str, Any]:
        """One page of task records, newest submitted first, filtered on the server.

        Returns ``{"rows", "counts", "total", "matching", "offset", "limit",
        "task_names"}``: ``counts`` per status (for ``task_name`` if given), ``total`` all
        records counted, ``matching`` those the filters select (the pager's length).

        Raises:
            FlowrraError: an unknown status, or a limit/offset out of range.
        """
        wanted = _status(status)
        if limit < 1 or limit > _PAGE_MAX or offset < 0:
            raise FlowrraError(f"limit must be 1 to {_PAGE_MAX} and offset at least 0.")
        counts = await self.counts(task_name or None)
        records = await self.app.list_results(
            status=wanted, task_name=task_name or None, limit=limit, offset=offset
        )
        total = sum(counts.values())
        return {
            "rows": [record_row(r) for r in records],
            "counts": counts,
            "total": total,
            "matching": counts[wanted.value] if wanted is not None else total,
            "offset": offset,
            "limit": limit,
            "task_names": self.task_names(),
            "statuses": list(TASK_STATUSES),
            "colors": dict(STATUS_COLORS),
        }

    def task_names(self) -> list[str]:
        """Registered task names, sorted."""
        return sorted(spec.name for spec in self.app.registry.specs())

    async def task(self, task_id: str) -> dict[str, Any] | None:
        """One task's details (arguments, result, error, traceback), or None."""
        record = await self.app.get_result(task_id)
        return None if record is None else record_detail(record)

    async def cancel(self, task_id: str) -> dict[str, Any]:
        """Cancel a task; ``{"task_id", "cancelled", "status"}``.

        Raises:
            FlowrraError: no task has this id.
        """
        record = await self.app.get_result(task_id)
        if record is None:
            raise FlowrraError(f"No task has the id {task_id!r}.")
        cancelled = await self.app.cancel(task_id)
        record = await self.app.get_result(task_id)
        status = record.status.value if record is not None else None
        return {"task_id": task_id, "cancelled": cancelled, "status": status}

    # -------------------------------------------------------------- schedules
    async def schedules(self, enabled_only: bool = False) -> list[dict[str, Any]]:
        """Every schedule (or the enabled ones) with next and last run."""
        return jsonable(await self.manager.list_schedules(enabled_only))

    async def schedule(self, schedule_id: str, runs: int = 20) -> dict[str, Any] | None:
        """One schedule with its latest runs, or None."""
        found = await self.manager.get_schedule(schedule_id, runs)
        return None if found is None else jsonable(found)

    async def create_schedule(self, body: dict[str, Any]) -> str:
        """Create a schedule from a form or JSON body; return its id.

        ``body``: ``kind`` ("cron", "interval" or "once"), ``task_name``, and ``cron``,
        ``interval`` (seconds) or ``run_at`` (ISO datetime) for the kind, plus optional
        ``args`` (a list), ``kwargs`` (a dict), ``description``, ``priority``,
        ``enabled``.

        Raises:
            FlowrraError: the body misses a field or has one of the wrong type; the
                message names it.
        """
        kind = str(body.get("kind") or ("cron" if "cron" in body else "")).lower()
        name = body.get("task_name")
        if not isinstance(name, str) or not name:
            raise FlowrraError("A schedule needs 'task_name': the name of a registered task.")
        args = body.get("args") or []
        kwargs = body.get("kwargs") or {}
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise FlowrraError("'args' must be a JSON list and 'kwargs' a JSON object.")
        description = body.get("description") or None
        try:
            priority = int(body.get("priority") or 0)
        except (TypeError, ValueError):
            raise FlowrraError("'priority' must be an integer.") from None
        enabled = body.get("enabled", True) not in (False, "false", "0", 0)
        if kind == "cron":
            cron = body.get("cron")
            if not isinstance(cron, str) or not cron.strip():
                raise FlowrraError("A cron schedule needs 'cron', e.g. '*/5 * * * *'.")
            return await self.manager.create_schedule_cron(
                name, cron.strip(), args, kwargs, enabled, description, priority
            )
        if kind == "interval":
            try:
                seconds = float(body.get("interval"))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise FlowrraError("An interval schedule needs 'interval' in seconds.") from None
            return await self.manager.create_schedule_interval(
                name, seconds, args, kwargs, enabled, description, priority
            )
        if kind == "once":
            try:
                run_at = datetime.fromisoformat(str(body.get("run_at")))
            except ValueError:
                raise FlowrraError(
                    "A one-time schedule needs 'run_at', an ISO date and time such as "
                    "'2026-12-01T09:00:00+00:00'."
                ) from None
            return await self.manager.create_schedule_once(
                name, run_at, args, kwargs, description, priority
            )
        raise FlowrraError("'kind' must be 'cron', 'interval' or 'once'.")

    # ---------------------------------------------------------------- workers
    async def workers(self) -> list[dict[str, Any]]:
        """Every worker process that reports to this app's broker, newest beat first;
        one whose beats stopped is marked ``lost``."""
        merged: dict[tuple[Any, Any], dict[str, Any]] = {}
        brokers = {id(e.broker): e.broker for e in (self.app.io_executor, self.app.cpu_executor)}
        for broker in brokers.values():
            lister = getattr(broker, "workers", None)
            if lister is None:
                continue
            for entry in await lister():
                key = (entry.get("host"), entry.get("pid"))
                known = merged.get(key)
                if known is None:
                    merged[key] = {**entry, "queues": list(entry.get("queues") or [])}
                    continue
                known["queues"] = sorted({*known["queues"], *(entry.get("queues") or [])})
                for field in ("concurrency", "running"):
                    known[field] = _number(known.get(field)) + _number(entry.get(field))
                if entry.get("seconds_since_beat", 1e9) < known.get("seconds_since_beat", 1e9):
                    known["seconds_since_beat"] = entry["seconds_since_beat"]
                    known["beat"] = entry.get("beat")
                known["lost"] = bool(known["lost"] and entry.get("lost"))
        found = sorted(merged.values(), key=lambda w: (w["lost"], -(w.get("beat") or 0)))
        return jsonable(found)

    # --------------------------------------------------------------- overview
    async def sample(self) -> dict[str, Any]:
        """Record the counts now, for the overview's chart; return the sample."""
        counts = await self.counts()
        point = {"t": time.time(), "counts": counts}
        self._samples.append(point)
        return point

    async def overview(self) -> dict[str, Any]:
        """Counts, throughput and failures over time (from the samples this process
        took), queue depth per queue, workers and the failed tasks of the last hour."""
        await self.sample()
        points = list(self._samples)
        series = []
        for before, after in itertools.pairwise(points):
            span = max(after["t"] - before["t"], 1e-9)
            done = sum(after["counts"][s] - before["counts"][s] for s in ("success", "failed"))
            failed = after["counts"]["failed"] - before["counts"]["failed"]
            series.append({"t": after["t"], "per_s": max(done, 0) / span, "failed": max(failed, 0)})
        hour_ago = datetime.now().astimezone() - timedelta(hours=1)
        failed = [
            record_row(r)
            for r in await self.app.list_results(status=TaskStatus.FAILED, limit=100)
            if r.finished_at is None or r.finished_at >= hour_ago
        ]
        return {
            "counts": points[-1]["counts"],
            "series": series,
            "queues": await self.queues(),
            "workers": await self.workers(),
            "failed_last_hour": failed,
            "app": {"running": self.app.is_running},
        }

    async def queues(self) -> list[dict[str, Any]]:
        """Tasks waiting per queue (``io`` and ``cpu``)."""
        out = []
        for kind, executor in (("io", self.app.io_executor), ("cpu", self.app.cpu_executor)):
            depth = getattr(executor.broker, "depth", None)
            waiting = await depth() if depth is not None else executor.queue_size()
            out.append({"queue": kind, "waiting": int(waiting)})
        return out

    # ----------------------------------------------------------- 0.1.8 shapes
    async def stats(self) -> dict[str, Any]:
        """``/api/stats``: 0.1.8's shape (app, executors, tasks, scheduler)."""
        stats = await self.manager.get_stats()
        stats["tasks"]["by_status"] = await self.counts()
        stats["tasks"]["pending"] = stats["tasks"]["by_status"]["pending"]
        stats["tasks"]["running"] = stats["tasks"]["by_status"]["running"]
        return jsonable(stats)

    async def health(self) -> dict[str, Any]:
        """``/api/health``: 0.1.8's shape."""
        return jsonable(await self.manager.health_check())

    async def registered_tasks(self) -> list[dict[str, Any]]:
        """``/api/tasks``: the registered tasks and their options."""
        return jsonable(await self.manager.list_registered_tasks())

    async def registered_task(self, task_name: str) -> dict[str, Any] | None:
        """``/api/tasks/{name}``: one registered task, or None."""
        found = await self.manager.get_task_info(task_name)
        return None if found is None else jsonable(found)
