"""Schedules in PostgreSQL (asyncpg; ``pip install -e '.[postgresql]' in flowrra's clone``).

A claim is one statement: ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)
RETURNING``, so concurrent schedulers take disjoint sets of due runs without waiting for
each other.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flowrra.clock import UTC
from flowrra.exceptions import ConfigError
from flowrra.scheduler.backends.base import (
    COLUMNS,
    DEFAULT_TABLE_PREFIX,
    PooledSQLSchedulerBackend,
)
from flowrra.scheduler.models import ScheduledTask

try:
    import asyncpg
except ImportError:  # pragma: no cover - the extra is not installed
    asyncpg = None

__all__ = ["PostgreSQLSchedulerBackend"]

_OPTIONS = ("table_prefix", "pool_min_size", "pool_max_size", "connect_timeout")
_PLACEHOLDER = re.compile(r"\?")


@lru_cache(maxsize=512)
def _numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, ...``."""
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


class _Session:
    """A :class:`~flowrra.scheduler.backends.base.Session` on an asyncpg connection."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        status = await self._conn.execute(_numbered(sql), *params)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(_numbered(sql), rows)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in await self._conn.fetch(_numbered(sql), *params)]


class PostgreSQLSchedulerBackend(PooledSQLSchedulerBackend):
    """Schedules in a PostgreSQL database.

    Usage::

        PostgreSQLSchedulerBackend("postgresql://user:secret@db.example/app")
        PostgreSQLSchedulerBackend("postgres://localhost/app?table_prefix=app_&pool_max_size=4")

    URL options (or keywords): ``table_prefix`` (default ``flowrra_``),
    ``pool_min_size`` (default 1), ``pool_max_size`` (default 10), ``connect_timeout``
    (seconds, default 10). Other query parameters (``sslmode``, ...) go to asyncpg.
    """

    kind = "PostgreSQL"
    lock_clause = " FOR UPDATE SKIP LOCKED"
    insert_ignore = ("INSERT", " ON CONFLICT DO NOTHING")

    def __init__(self, url: str, **options: Any) -> None:
        """Use the database at ``url``; see the class docstring for the options."""
        if asyncpg is None:
            raise ImportError(
                "The PostgreSQL scheduler backend needs asyncpg:"
                " pip install -e '.[postgresql]' in flowrra's clone"
            )
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        ours = {k: v for k, v in query if k in _OPTIONS}
        ours.update(options)
        unknown = set(options) - set(_OPTIONS)
        if unknown:
            raise ConfigError(
                f"Unknown option(s) {', '.join(sorted(unknown))}; the PostgreSQL scheduler "
                f"backend takes {', '.join(_OPTIONS)}"
            )
        super().__init__(str(ours.get("table_prefix", DEFAULT_TABLE_PREFIX)))
        self._init_pool(url, parts.password, ours)
        rest = [(k, v) for k, v in query if k not in _OPTIONS]
        self._dsn = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(rest)))
        self._driver_errors = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
        self._integrity_errors = (asyncpg.UniqueViolationError,)

    # ------------------------------------------------------------- dialect
    def _ddl(self) -> list[str]:
        s, r = self.schedules_table, self.runs_table
        return [
            "SELECT pg_advisory_xact_lock(hashtext('flowrra:' || current_schema() || ?))",
            f"""CREATE TABLE IF NOT EXISTS {s} (
                id TEXT PRIMARY KEY, definition_key TEXT NOT NULL UNIQUE,
                task_name TEXT NOT NULL, schedule_type TEXT NOT NULL, schedule TEXT NOT NULL,
                timezone TEXT, args TEXT NOT NULL, kwargs TEXT NOT NULL,
                enabled BOOLEAN NOT NULL DEFAULT TRUE, priority INTEGER NOT NULL DEFAULT 0,
                max_retries INTEGER, retry_delay DOUBLE PRECISION, timeout DOUBLE PRECISION,
                missed_runs TEXT NOT NULL, max_catchup INTEGER NOT NULL, description TEXT,
                next_run_at TIMESTAMPTZ, last_run_at TIMESTAMPTZ,
                created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL,
                lease_owner TEXT, lease_until TIMESTAMPTZ)""",
            f"CREATE INDEX IF NOT EXISTS {s}_due ON {s} (enabled, next_run_at)",
            f"CREATE INDEX IF NOT EXISTS {s}_lease ON {s} (lease_until)",
            f"""CREATE TABLE IF NOT EXISTS {r} (
                id BIGSERIAL PRIMARY KEY, schedule_id TEXT NOT NULL,
                due_at TIMESTAMPTZ NOT NULL, fired_at TIMESTAMPTZ NOT NULL, task_id TEXT,
                outcome TEXT NOT NULL, error TEXT, scheduler TEXT,
                UNIQUE (schedule_id, due_at))""",
        ]

    async def _create_tables(self, db: Any) -> None:
        statements = self._ddl()
        await db.fetch(statements[0], [self.table_prefix])
        for statement in statements[1:]:
            await db.execute(statement)

    def _add_sql(self) -> str:
        marks = ", ".join("?" * len(COLUMNS))
        return (
            f"INSERT INTO {self.schedules_table} ({self._cols}) VALUES ({marks}) "
            "ON CONFLICT (definition_key) DO NOTHING"
        )

    def _in(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(?)", [list(values)]

    def _enc_dt(self, value: datetime | None) -> datetime | None:
        return value

    def _dec_dt(self, value: Any) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    async def claim_due(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        task_names: Sequence[str],
        limit: int,
    ) -> list[ScheduledTask]:
        """Lease up to ``limit`` due schedules in one statement (``FOR UPDATE SKIP
        LOCKED``), soonest first."""
        if not task_names:
            return []
        inner = self._claim_select("task_name = ANY(?)", columns="id")
        sql = (
            f"UPDATE {self.schedules_table} SET lease_owner = ?, lease_until = ? "
            f"WHERE id IN ({inner}) RETURNING {self._cols}"
        )
        params = [owner, lease_until, True, now, now, list(task_names), limit]
        async with self._db() as db:
            rows = await db.fetch(sql, params)
        tasks = [self._task(row) for row in rows]
        tasks.sort(key=lambda t: (t.next_run_at, t.priority, t.id))
        return tasks

    # ---------------------------------------------------------- connection
    async def _connect(self) -> None:
        if self._pool is not None:
            return
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=self.pool_min_size,
            max_size=self.pool_max_size,
            timeout=self.connect_timeout,
        )

    async def _disconnect(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @asynccontextmanager
    async def _session(self, transaction: bool) -> AsyncIterator[_Session]:
        if self._pool is None:
            raise asyncpg.InterfaceError("the connection pool is closed")
        async with self._pool.acquire() as conn:
            if not transaction:
                yield _Session(conn)
                return
            async with conn.transaction():
                yield _Session(conn)
