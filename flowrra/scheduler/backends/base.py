"""The scheduler-backend contract and the SQL that SQLite, PostgreSQL and MySQL share.

:class:`BaseSchedulerBackend` keeps flowrra 0.1.8's abstract methods (``create``,
``update``, ``delete``, ``get``, ``list_all``, ``list_enabled``, ``list_due``,
``update_run_times``, ``clear``, ``find_by_definition``, ``close``) and adds what a
scheduler that fires each run exactly once needs: an idempotent :meth:`add` (a unique
key, not a check-then-insert), leases (:meth:`claim_due`, :meth:`complete_runs`,
:meth:`release`), the next wake-up time and a short run history. The 0.2 methods have
plain defaults built on the 0.1.8 ones, so an old custom backend still works in one
process.

:class:`SQLSchedulerBackend` implements all of it once; a dialect supplies its DDL, its
connection handling and a few clauses. :class:`PooledSQLSchedulerBackend` adds what the
networked databases (PostgreSQL, MySQL) share: a URL and a connection pool.
"""

from __future__ import annotations

import asyncio
import json
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, ClassVar, Protocol
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from flowrra.clock import utcnow
from flowrra.exceptions import ConfigError
from flowrra.scheduler.models import (
    RunCompletion,
    RunOutcome,
    ScheduledTask,
    ScheduleError,
    SchedulerBackendError,
    ScheduleRun,
    ScheduleType,
    dump_json,
)

__all__ = [
    "COLUMNS",
    "DEFAULT_TABLE_PREFIX",
    "BaseSchedulerBackend",
    "PooledSQLSchedulerBackend",
    "SQLSchedulerBackend",
    "Session",
    "check_table_prefix",
    "option_int",
    "option_seconds",
    "query_password",
    "redact_url",
]

DEFAULT_TABLE_PREFIX = "flowrra_"
_PREFIX_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
_PRUNE_CHUNK = 500

COLUMNS = (
    "id",
    "definition_key",
    "task_name",
    "schedule_type",
    "schedule",
    "timezone",
    "args",
    "kwargs",
    "enabled",
    "priority",
    "max_retries",
    "retry_delay",
    "timeout",
    "missed_runs",
    "max_catchup",
    "description",
    "next_run_at",
    "last_run_at",
    "created_at",
    "updated_at",
    "lease_owner",
    "lease_until",
)
_DATETIMES = ("next_run_at", "last_run_at", "created_at", "updated_at", "lease_until")
_RUN_COLUMNS = ("schedule_id", "due_at", "fired_at", "task_id", "outcome", "error", "scheduler")


#: Query parameters that carry a password (asyncpg reads ``password`` and ``sslpassword``).
SECRET_QUERY_KEYS = frozenset({"password", "passwd", "sslpassword"})


def query_password(url: str) -> str | None:
    """The password given as a ``?password=`` query parameter of ``url``, or None."""
    for key, value in parse_qsl(url.partition("?")[2], keep_blank_values=True):
        if key.lower() in SECRET_QUERY_KEYS and value:
            return value
    return None


def redact_url(url: str) -> str:
    """``url`` with every password replaced by ``***``: the user part's
    (``postgresql://user:pw@host``) and ``?password=`` (or ``sslpassword``) query
    parameters. Safe for messages, reprs and logs."""
    base, sep, query = url.partition("?")
    try:
        parts = urlsplit(base)
        has_password = parts.password is not None
    except ValueError:
        return "<unparseable URL>"
    if has_password:
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0].split(":", 1)[0]
        base = urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(key.lower() in SECRET_QUERY_KEYS for key, _ in pairs):
        hidden = [(k, "***" if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs]
        query = urlencode(hidden, safe="*")
    return f"{base}{sep}{query}"


def check_table_prefix(prefix: object) -> str:
    """Return ``prefix`` if it is a safe SQL identifier prefix (letters, digits, ``_``; at
    most 40 characters, not starting with a digit); else raise ConfigError."""
    if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix):
        raise ConfigError(
            f"table_prefix must be letters, digits and underscores (at most 40, not starting "
            f"with a digit), got {prefix!r}"
        )
    return prefix


def option_int(value: Any, name: str, minimum: int) -> int:
    """A whole-number backend option (from a URL or a keyword); ConfigError if not."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {number}")
    return number


def option_seconds(value: Any, name: str) -> float:
    """A positive number of seconds (from a URL or a keyword); ConfigError if not."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number of seconds, got {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{name} must be positive, got {number}")
    return number


class BaseSchedulerBackend(ABC):
    """Where schedules live. Every method is a coroutine; datetimes are aware UTC.

    Subclass it for a custom store: implement the abstract (flowrra 0.1.8) methods, and
    override the lease methods to coordinate several schedulers (the defaults assume
    one scheduler process).
    """

    # ------------------------------------------------------------------ 0.1.8
    @abstractmethod
    async def create(self, task: ScheduledTask) -> None:
        """Insert ``task``; ScheduleError if its id (or definition) already exists."""

    @abstractmethod
    async def update(self, task: ScheduledTask) -> None:
        """Rewrite ``task``; ScheduleError if it does not exist."""

    @abstractmethod
    async def delete(self, task_id: str) -> bool:
        """Delete a schedule and its run history; True if it existed."""

    @abstractmethod
    async def get(self, task_id: str) -> ScheduledTask | None:
        """The schedule ``task_id``, or None."""

    @abstractmethod
    async def list_all(self) -> list[ScheduledTask]:
        """Every schedule, oldest first."""

    @abstractmethod
    async def list_enabled(self) -> list[ScheduledTask]:
        """The enabled schedules, soonest next run first."""

    @abstractmethod
    async def list_due(self, now: datetime | None = None) -> list[ScheduledTask]:
        """Enabled schedules whose next run is at or before ``now``, soonest first."""

    @abstractmethod
    async def update_run_times(
        self, task_id: str, last_run: datetime | None, next_run: datetime | None
    ) -> None:
        """Set a schedule's last and next run times; ScheduleError if it does not exist."""

    @abstractmethod
    async def clear(self) -> int:
        """Delete every schedule; return how many there were."""

    @abstractmethod
    async def find_by_definition(
        self,
        task_name: str,
        schedule_type: ScheduleType,
        schedule: str,
        args: tuple = (),
        kwargs: dict | None = None,
    ) -> ScheduledTask | None:
        """The schedule with this task, schedule text, args and kwargs, or None."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections; the next call reconnects."""

    # -------------------------------------------------------------------- 0.2
    async def initialize(self) -> None:
        """Connect and create the tables if needed (otherwise done on first use)."""
        return None

    async def add(self, task: ScheduledTask) -> ScheduledTask:
        """Insert ``task`` unless a schedule with its definition exists; return the stored
        one. (This default checks, then inserts: one process only.)"""
        existing = await self.find_by_definition(
            task.task_name, task.schedule_type, task.schedule, task.args, task.kwargs
        )
        if existing is not None:
            return existing
        await self.create(task)
        return task

    async def set_enabled(self, task_id: str, enabled: bool, next_run_at: datetime | None) -> bool:
        """Enable or disable a schedule and set its next run; False if it does not exist."""
        task = await self.get(task_id)
        if task is None:
            return False
        task.enabled, task.next_run_at = enabled, next_run_at
        await self.update(task)
        return True

    async def claim_due(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        task_names: Sequence[str],
        limit: int,
    ) -> list[ScheduledTask]:
        """Lease up to ``limit`` due schedules of ``task_names`` to ``owner`` until
        ``lease_until``; no other scheduler claims them meanwhile."""
        names = set(task_names)
        due = [t for t in await self.list_due(now) if t.task_name in names]
        return due[:limit]

    async def complete_runs(self, owner: str, completions: Sequence[RunCompletion]) -> None:
        """Record fired runs, move the schedules on and end ``owner``'s leases on them."""
        for done in completions:
            task = await self.get(done.schedule_id)
            if task is None:
                continue
            task.last_run_at = done.last_run_at or task.last_run_at
            task.next_run_at = done.next_run_at
            task.enabled = task.enabled and done.keep_enabled
            await self.update(task)

    async def release(self, owner: str) -> int:
        """End every lease ``owner`` holds (the scheduler stops); return how many."""
        return 0

    async def next_due_time(self, now: datetime, task_names: Sequence[str]) -> datetime | None:
        """When the next enabled schedule of ``task_names`` falls due (or its lease ends)."""
        names = set(task_names)
        times = [
            t.next_run_at
            for t in await self.list_enabled()
            if t.next_run_at is not None and t.task_name in names
        ]
        return min(times, default=None)

    async def list_runs(self, schedule_id: str, limit: int = 20) -> list[ScheduleRun]:
        """The latest runs of a schedule, newest first (this default keeps no history)."""
        return []

    async def prune_runs(self, schedule_ids: Sequence[str], keep: int) -> int:
        """Keep only the ``keep`` latest runs of each schedule; return how many went."""
        return 0

    async def count(self) -> tuple[int, int]:
        """``(total, enabled)`` numbers of schedules."""
        tasks = await self.list_all()
        return len(tasks), sum(1 for t in tasks if t.enabled)

    async def ping(self) -> None:
        """Raise SchedulerBackendError if the store cannot be reached."""
        return None


class Session(Protocol):
    """One connection (inside a transaction or not) of a :class:`SQLSchedulerBackend`.

    SQL is written with ``?`` placeholders; each dialect translates them.
    """

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; return the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run a statement once per parameter row."""
        ...

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a query; return its rows as dicts."""
        ...


class SQLSchedulerBackend(BaseSchedulerBackend):
    """The schedule store on a SQL database: tables ``<prefix>schedules`` and
    ``<prefix>schedule_runs``.

    Exactly-once firing: a scheduler *claims* due rows by writing a lease (owner and
    expiry) in one transaction that locks them (``FOR UPDATE SKIP LOCKED`` on PostgreSQL
    and MySQL/MariaDB, the database write lock on SQLite); it submits their tasks, then
    moves each row on and clears the lease in a second transaction. A lease that
    expires (the scheduler died) lets another scheduler fire the run.
    """

    #: Appended to the claim query (row locks where the database has them).
    lock_clause: ClassVar[str] = ""
    #: How a history row is inserted when one for the same run may exist.
    insert_ignore: ClassVar[tuple[str, str]] = ("INSERT OR IGNORE", "")
    #: The name of the database kind, for messages.
    kind: ClassVar[str] = "SQL"

    def __init__(self, table_prefix: str = DEFAULT_TABLE_PREFIX) -> None:
        """Set up the table names; connections open on first use."""
        self.table_prefix = check_table_prefix(table_prefix)
        self.schedules_table = f"{table_prefix}schedules"
        self.runs_table = f"{table_prefix}schedule_runs"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready_lock: asyncio.Lock | None = None
        self._ready = False
        self._closer: asyncio.Task[None] | None = None
        self._cols = ", ".join(COLUMNS)

    # ------------------------------------------------------- dialect interface
    @property
    @abstractmethod
    def display_url(self) -> str:
        """Where the database is, without a password (for messages)."""

    @abstractmethod
    def _ddl(self) -> list[str]:
        """Statements that create the tables and indexes if missing."""

    @abstractmethod
    def _add_sql(self) -> str:
        """An INSERT of all :data:`COLUMNS` that does nothing on a definition conflict."""

    @abstractmethod
    async def _connect(self) -> None:
        """Open the connection or pool (errors are wrapped by the caller)."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """Close the connection or pool."""

    def _abandon(self) -> None:
        """Drop connections bound to another (maybe closed) event loop, without awaiting."""

    @abstractmethod
    def _session(self, transaction: bool) -> Any:
        """An async context manager yielding a :class:`Session`."""

    @abstractmethod
    def _enc_dt(self, value: datetime | None) -> Any:
        """A datetime as this database stores it."""

    @abstractmethod
    def _dec_dt(self, value: Any) -> datetime | None:
        """A stored datetime back as an aware UTC datetime."""

    #: Driver exceptions that mean "the database failed".
    _driver_errors: tuple[type[BaseException], ...] = (OSError,)
    #: Driver exceptions for a unique-key violation.
    _integrity_errors: tuple[type[BaseException], ...] = ()

    def _in(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column IN (...)`` with one placeholder per value."""
        return f"{column} IN ({', '.join('?' * len(values))})", list(values)

    async def _create_tables(self, db: Session) -> None:
        for statement in self._ddl():
            await db.execute(statement)

    # ------------------------------------------------------------- plumbing
    def _fail(self, exc: BaseException, doing: str) -> SchedulerBackendError:
        message = str(exc) or type(exc).__name__
        return SchedulerBackendError(
            f"{doing} the {self.kind} scheduler database at {self.display_url} failed: "
            f"{type(exc).__name__}: {self._scrub(message)}"
        )

    def _scrub(self, text: str) -> str:
        """Remove the password from a driver's message (drivers may quote the DSN)."""
        return text

    async def _ensure_ready(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None:
                self._drop_closer()
                self._abandon()
            self._loop, self._ready_lock, self._ready = loop, asyncio.Lock(), False
        if self._ready:
            return
        assert self._ready_lock is not None
        async with self._ready_lock:
            if self._ready:
                return
            try:
                await self._connect()
            except (*self._driver_errors, TimeoutError) as exc:
                raise self._fail(exc, "Connecting to") from exc
            self._close_with(loop)
            try:
                await self._when_free(self._create_all_tables)
            except self._driver_errors as exc:
                raise self._fail(exc, "Creating the tables of") from exc
            self._ready = True

    async def _create_all_tables(self) -> None:
        async with self._session(True) as db:
            await self._create_tables(db)

    async def _when_free(self, attempt: Callable[[], Awaitable[Any]]) -> None:
        """Run ``attempt``; a dialect whose database may be briefly busy (SQLite) retries."""
        await attempt()

    def _close_with(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the connections on ``loop`` when it shuts down, if nobody did before.

        A connection belongs to the loop that opened it. A backend used after its
        scheduler stopped (``list_runs`` in a script's last lines, say) reopens them;
        ``asyncio.run`` cancels every task before closing its loop, so this watcher
        closes them there, on their own loop, instead of the driver failing later in
        ``__del__`` with "Event loop is closed".
        """
        if self._closer is None or self._closer.get_loop() is not loop:
            self._closer = loop.create_task(self._close_at_loop_end(), name="flowrra-db-closer")

    async def _close_at_loop_end(self) -> None:
        try:
            await asyncio.get_running_loop().create_future()  # until cancelled
        finally:
            if self._closer is asyncio.current_task():
                self._closer = None
                await self._close_here()

    @asynccontextmanager
    async def _db(self, transaction: bool = False) -> AsyncIterator[Session]:
        """A session on a ready database; driver errors become SchedulerBackendError."""
        if not self._ready or self._loop is not asyncio.get_running_loop():
            await self._ensure_ready()
        try:
            async with self._session(transaction) as db:
                yield db
        except self._driver_errors as exc:
            raise self._fail(exc, "A query on") from exc

    async def initialize(self) -> None:
        """Connect and create the tables if needed (otherwise done on first use)."""
        await self._ensure_ready()

    async def close(self) -> None:
        """Close the connections; the next call reconnects."""
        self._drop_closer()
        await self._close_here()

    def _drop_closer(self) -> None:
        """Stop watching for the end of the connections' loop (from any thread)."""
        closer, self._closer = self._closer, None
        if closer is None or closer.done():
            return
        home = closer.get_loop()
        if home is asyncio.get_running_loop():
            closer.cancel()
        elif not home.is_closed():
            home.call_soon_threadsafe(closer.cancel)

    async def _close_here(self) -> None:
        """Close the connections: on their loop, or drop them if they belong to another."""
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            self._abandon()
        else:
            await self._disconnect()
        self._ready = False
        self._loop = None

    async def ping(self) -> None:
        """Raise SchedulerBackendError if the database cannot be reached."""
        await self._ensure_ready()
        async with self._db() as db:
            await db.fetch("SELECT 1 AS one")

    async def drop_tables(self) -> None:
        """Drop this backend's tables (for tests and uninstalling)."""
        await self._ensure_ready()
        async with self._db() as db:
            await db.execute(f"DROP TABLE IF EXISTS {self.runs_table}")
            await db.execute(f"DROP TABLE IF EXISTS {self.schedules_table}")
        self._ready = False

    # ------------------------------------------------------------- row codecs
    def _params(self, task: ScheduledTask) -> list[Any]:
        return [
            task.id,
            task.definition_key,
            task.task_name,
            task.schedule_type.value,
            task.schedule,
            task.timezone,
            dump_json(list(task.args)),
            dump_json(task.kwargs),
            bool(task.enabled),
            task.priority,
            task.max_retries,
            task.retry_delay,
            task.timeout,
            task.missed_runs.value,
            task.max_catchup,
            task.description,
            self._enc_dt(task.next_run_at),
            self._enc_dt(task.last_run_at),
            self._enc_dt(task.created_at),
            self._enc_dt(task.updated_at),
            task.lease_owner,
            self._enc_dt(task.lease_until),
        ]

    def _task(self, row: dict[str, Any]) -> ScheduledTask:
        data = dict(row)
        for name in _DATETIMES:
            data[name] = self._dec_dt(data[name])
        data["args"] = json.loads(data["args"])
        data["kwargs"] = json.loads(data["kwargs"])
        return ScheduledTask.from_dict(data)

    def _run(self, row: dict[str, Any]) -> ScheduleRun:
        return ScheduleRun(
            schedule_id=row["schedule_id"],
            due_at=self._dec_dt(row["due_at"]),  # type: ignore[arg-type]
            fired_at=self._dec_dt(row["fired_at"]),  # type: ignore[arg-type]
            task_id=row["task_id"],
            outcome=RunOutcome(row["outcome"]),
            error=row["error"],
            scheduler=row["scheduler"],
        )

    def _select(self, where: str = "", order: str = "", columns: str | None = None) -> str:
        sql = f"SELECT {columns or self._cols} FROM {self.schedules_table}"
        if where:
            sql += f" WHERE {where}"
        if order:
            sql += f" ORDER BY {order}"
        return sql

    async def _query(self, sql: str, params: Sequence[Any] = ()) -> list[ScheduledTask]:
        async with self._db() as db:
            return [self._task(row) for row in await db.fetch(sql, params)]

    # ----------------------------------------------------------------- CRUD
    async def create(self, task: ScheduledTask) -> None:
        """Insert ``task``; ScheduleError if its id or its definition already exists."""
        placeholders = ", ".join("?" * len(COLUMNS))
        sql = f"INSERT INTO {self.schedules_table} ({self._cols}) VALUES ({placeholders})"
        try:
            async with self._db() as db:
                await db.execute(sql, self._params(task))
        except SchedulerBackendError as exc:
            if isinstance(exc.__cause__, self._integrity_errors):
                raise ScheduleError(
                    f"Scheduled task with ID '{task.id}' (or the same definition) already exists"
                ) from None
            raise

    async def add(self, task: ScheduledTask) -> ScheduledTask:
        """Insert ``task`` unless a schedule with the same definition exists (a unique key
        decides, so concurrent adds from many processes make one row); return the stored
        schedule. ScheduleError if ``task.id`` is taken by a different definition."""
        try:
            async with self._db() as db:
                await db.execute(self._add_sql(), self._params(task))
        except SchedulerBackendError as exc:
            if not isinstance(exc.__cause__, self._integrity_errors):
                raise
        stored = await self._query(self._select("definition_key = ?"), [task.definition_key])
        if not stored:
            raise ScheduleError(
                f"Schedule id '{task.id}' is already used by a different schedule; choose "
                "another id or unschedule that one first"
            )
        return stored[0]

    async def update(self, task: ScheduledTask) -> None:
        """Rewrite every column of ``task`` (``updated_at`` becomes now)."""
        task.updated_at = utcnow()
        columns = [c for c in COLUMNS if c not in ("id", "created_at")]
        params = self._params(task)
        values = [params[COLUMNS.index(c)] for c in columns]
        sql = (
            f"UPDATE {self.schedules_table} SET {', '.join(f'{c} = ?' for c in columns)} "
            "WHERE id = ?"
        )
        async with self._db() as db:
            changed = await db.execute(sql, [*values, task.id])
        if not changed and await self.get(task.id) is None:
            raise ScheduleError(f"Scheduled task with ID '{task.id}' not found")

    async def delete(self, task_id: str) -> bool:
        """Delete a schedule and its run history; True if it existed."""
        async with self._db(transaction=True) as db:
            await db.execute(f"DELETE FROM {self.runs_table} WHERE schedule_id = ?", [task_id])
            return bool(
                await db.execute(f"DELETE FROM {self.schedules_table} WHERE id = ?", [task_id])
            )

    async def get(self, task_id: str) -> ScheduledTask | None:
        """The schedule ``task_id``, or None."""
        found = await self._query(self._select("id = ?"), [task_id])
        return found[0] if found else None

    async def list_all(self) -> list[ScheduledTask]:
        """Every schedule, oldest first."""
        return await self._query(self._select(order="created_at, id"))

    async def list_enabled(self) -> list[ScheduledTask]:
        """The enabled schedules, soonest next run first."""
        return await self._query(self._select("enabled = ?", "next_run_at, id"), [True])

    async def list_due(self, now: datetime | None = None) -> list[ScheduledTask]:
        """Enabled schedules due at ``now`` (default: now), soonest first, then by priority
        (lower first)."""
        moment = self._enc_dt(now or utcnow())
        sql = self._select("enabled = ? AND next_run_at <= ?", "next_run_at, priority, id")
        return await self._query(sql, [True, moment])

    async def update_run_times(
        self, task_id: str, last_run: datetime | None, next_run: datetime | None
    ) -> None:
        """Set a schedule's last and next run times; ScheduleError if it does not exist."""
        sql = (
            f"UPDATE {self.schedules_table} SET last_run_at = ?, next_run_at = ?, "
            "updated_at = ? WHERE id = ?"
        )
        params = [self._enc_dt(last_run), self._enc_dt(next_run), self._enc_dt(utcnow()), task_id]
        async with self._db() as db:
            changed = await db.execute(sql, params)
        if not changed and await self.get(task_id) is None:
            raise ScheduleError(f"Scheduled task with ID '{task_id}' not found")

    async def clear(self) -> int:
        """Delete every schedule and all history; return how many schedules there were."""
        async with self._db(transaction=True) as db:
            await db.execute(f"DELETE FROM {self.runs_table}")
            return await db.execute(f"DELETE FROM {self.schedules_table}")

    async def find_by_definition(
        self,
        task_name: str,
        schedule_type: ScheduleType,
        schedule: str,
        args: tuple = (),
        kwargs: dict | None = None,
    ) -> ScheduledTask | None:
        """The schedule with this task, schedule text, args and kwargs, or None."""
        sql = self._select("task_name = ? AND schedule_type = ? AND schedule = ?", "created_at")
        found = await self._query(sql, [task_name, ScheduleType(schedule_type).value, schedule])
        wanted = (dump_json(list(args)), dump_json(kwargs or {}))
        for task in found:
            if (dump_json(list(task.args)), dump_json(task.kwargs)) == wanted:
                return task
        return None

    async def set_enabled(self, task_id: str, enabled: bool, next_run_at: datetime | None) -> bool:
        """Enable or disable a schedule and set its next run; False if it does not exist."""
        sql = (
            f"UPDATE {self.schedules_table} SET enabled = ?, next_run_at = ?, updated_at = ? "
            "WHERE id = ?"
        )
        params = [bool(enabled), self._enc_dt(next_run_at), self._enc_dt(utcnow()), task_id]
        async with self._db() as db:
            changed = await db.execute(sql, params)
        return bool(changed) or await self.get(task_id) is not None

    async def count(self) -> tuple[int, int]:
        """``(total, enabled)`` numbers of schedules."""
        sql = (
            "SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN enabled THEN 1 ELSE 0 END), 0) "
            f"AS enabled FROM {self.schedules_table}"
        )
        async with self._db() as db:
            row = (await db.fetch(sql))[0]
        return int(row["total"]), int(row["enabled"])

    # -------------------------------------------------------------- leases
    def _claim_select(self, names_sql: str, columns: str | None = None) -> str:
        where = (
            "enabled = ? AND next_run_at <= ? AND (lease_until IS NULL OR lease_until <= ?) "
            f"AND {names_sql}"
        )
        order = "next_run_at, priority, id"
        return self._select(where, order, columns) + " LIMIT ?" + self.lock_clause

    async def claim_due(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        task_names: Sequence[str],
        limit: int,
    ) -> list[ScheduledTask]:
        """Lease up to ``limit`` due schedules of ``task_names`` to ``owner``: select them
        with row locks (or the SQLite write lock) and write the lease, in one transaction."""
        if not task_names:
            return []
        names_sql, names = self._in("task_name", list(task_names))
        moment = self._enc_dt(now)
        async with self._db(transaction=True) as db:
            rows = await db.fetch(
                self._claim_select(names_sql), [True, moment, moment, *names, limit]
            )
            if not rows:
                return []
            ids_sql, ids = self._in("id", [row["id"] for row in rows])
            lease = f"UPDATE {self.schedules_table} SET lease_owner = ?, lease_until = ?"
            await db.execute(f"{lease} WHERE {ids_sql}", [owner, self._enc_dt(lease_until), *ids])
        tasks = [self._task(row) for row in rows]
        for task in tasks:
            task.lease_owner, task.lease_until = owner, lease_until
        return tasks

    async def complete_runs(self, owner: str, completions: Sequence[RunCompletion]) -> None:
        """In one transaction: move each schedule on (only while ``owner`` still holds its
        lease), end the lease (or hold it back until ``retry_at``) and add the runs to
        the history (a run already recorded is not recorded twice)."""
        if not completions:
            return
        now = self._enc_dt(utcnow())
        update = (
            f"UPDATE {self.schedules_table} SET last_run_at = COALESCE(?, last_run_at), "
            "next_run_at = ?, enabled = (enabled AND ?), lease_owner = NULL, "
            "lease_until = ?, updated_at = ? WHERE id = ? AND lease_owner = ?"
        )
        rows = [
            [
                self._enc_dt(done.last_run_at),
                self._enc_dt(done.next_run_at),
                bool(done.keep_enabled),
                self._enc_dt(done.retry_at),
                now,
                done.schedule_id,
                owner,
            ]
            for done in completions
        ]
        runs = [self._run_params(run) for done in completions for run in done.runs]
        async with self._db(transaction=True) as db:
            await db.executemany(update, rows)
            if runs:
                await db.executemany(self._insert_run_sql(), runs)

    def _insert_run_sql(self) -> str:
        head, tail = self.insert_ignore
        marks = ", ".join("?" * len(_RUN_COLUMNS))
        return f"{head} INTO {self.runs_table} ({', '.join(_RUN_COLUMNS)}) VALUES ({marks}){tail}"

    def _run_params(self, run: ScheduleRun) -> list[Any]:
        return [
            run.schedule_id,
            self._enc_dt(run.due_at),
            self._enc_dt(run.fired_at),
            run.task_id,
            run.outcome.value,
            run.error,
            run.scheduler,
        ]

    async def release(self, owner: str) -> int:
        """End every lease ``owner`` holds (the scheduler stops); return how many."""
        sql = (
            f"UPDATE {self.schedules_table} SET lease_owner = NULL, lease_until = NULL "
            "WHERE lease_owner = ?"
        )
        async with self._db() as db:
            return await db.execute(sql, [owner])

    async def next_due_time(self, now: datetime, task_names: Sequence[str]) -> datetime | None:
        """When the next enabled schedule of ``task_names`` falls due; for one leased by a
        scheduler, when its lease ends. Two index-ordered lookups, not a scan."""
        if not task_names:
            return None
        names_sql, names = self._in("task_name", list(task_names))
        table, moment = self.schedules_table, self._enc_dt(now)
        sql = (
            f"SELECT (SELECT next_run_at FROM {table} WHERE enabled = ? AND next_run_at IS NOT "
            f"NULL AND (lease_until IS NULL OR lease_until <= ?) AND {names_sql} "
            "ORDER BY next_run_at LIMIT 1) AS due, "
            f"(SELECT lease_until FROM {table} WHERE lease_until > ? AND enabled = ? AND "
            f"next_run_at IS NOT NULL AND {names_sql} ORDER BY lease_until LIMIT 1) AS leased"
        )
        async with self._db() as db:
            row = (await db.fetch(sql, [True, moment, *names, moment, True, *names]))[0]
        times = [self._dec_dt(row[key]) for key in ("due", "leased") if row[key] is not None]
        return min(times, default=None)  # type: ignore[type-var]

    # ------------------------------------------------------------- history
    async def add_runs(self, runs: Sequence[ScheduleRun]) -> None:
        """Append runs to the history (one already recorded is kept as it was)."""
        async with self._db(transaction=True) as db:
            await db.executemany(self._insert_run_sql(), [self._run_params(r) for r in runs])

    async def list_runs(self, schedule_id: str, limit: int = 20) -> list[ScheduleRun]:
        """The latest runs of a schedule, newest first."""
        sql = (
            f"SELECT {', '.join(_RUN_COLUMNS)} FROM {self.runs_table} WHERE schedule_id = ? "
            "ORDER BY due_at DESC, id DESC LIMIT ?"
        )
        async with self._db() as db:
            return [self._run(row) for row in await db.fetch(sql, [schedule_id, limit])]

    async def prune_runs(self, schedule_ids: Sequence[str], keep: int) -> int:
        """Keep only the ``keep`` latest runs of each of ``schedule_ids``."""
        removed = 0
        ids = list(schedule_ids)
        for start in range(0, len(ids), _PRUNE_CHUNK):
            ids_sql, chunk = self._in("schedule_id", ids[start : start + _PRUNE_CHUNK])
            sql = (
                f"DELETE FROM {self.runs_table} WHERE id IN (SELECT id FROM (SELECT id, "
                "ROW_NUMBER() OVER (PARTITION BY schedule_id ORDER BY due_at DESC, id DESC) "
                f"AS rn FROM {self.runs_table} WHERE {ids_sql}) ranked WHERE rn > ?)"
            )
            async with self._db() as db:
                removed += await db.execute(sql, [*chunk, keep])
        return removed

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.display_url} prefix={self.table_prefix!r}>"


class PooledSQLSchedulerBackend(SQLSchedulerBackend):
    """A :class:`SQLSchedulerBackend` on a database server reached by URL through a pool.

    It owns the URL, the password (kept out of messages), the pool options
    ``pool_min_size`` (default 1), ``pool_max_size`` (default 10) and
    ``connect_timeout`` (seconds, default 10), and the pool itself: a dialect's
    ``__init__`` calls :meth:`_init_pool` and its ``_connect`` fills ``_pool``.
    """

    def _init_pool(self, url: str, password: str | None, options: Mapping[str, Any]) -> None:
        """Keep ``url`` and ``password`` (unquoted; None or empty if there is none) and
        read the pool options from ``options`` (URL query and keywords); ConfigError if
        one is invalid. The pool opens on first use."""
        self.url = url
        self._password = password
        given = [p for p in (password, query_password(url)) if p]
        self._secrets = sorted({*given, *map(unquote, given)}, key=len, reverse=True)
        self.pool_min_size = option_int(options.get("pool_min_size", 1), "pool_min_size", 0)
        self.pool_max_size = option_int(options.get("pool_max_size", 10), "pool_max_size", 1)
        self.connect_timeout = option_seconds(
            options.get("connect_timeout", 10.0), "connect_timeout"
        )
        if self.pool_min_size > self.pool_max_size:
            raise ConfigError("pool_min_size must not exceed pool_max_size")
        self._pool: Any = None

    @property
    def display_url(self) -> str:
        """The URL without its password."""
        return redact_url(self.url)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _abandon(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.terminate()
