"""Schedules in MySQL 8 or MariaDB 10.6+ (aiomysql; ``pip install -e '.[mysql]'``, in a clone).

Claims select due rows ``FOR UPDATE SKIP LOCKED`` and write the lease in the same
transaction. Connections run in autocommit mode at READ COMMITTED, so a plain read always
sees the latest committed rows (no stale snapshot on a pooled connection) and a claim
locks only the rows it takes.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from flowrra.clock import UTC
from flowrra.exceptions import ConfigError
from flowrra.scheduler.backends.base import (
    COLUMNS,
    DEFAULT_TABLE_PREFIX,
    PooledSQLSchedulerBackend,
    redact_url,
)

try:
    import aiomysql
    import pymysql
    from pymysql.constants import CLIENT
except ImportError:  # pragma: no cover - the extra is not installed
    aiomysql = None

__all__ = ["MySQLSchedulerBackend"]

_OPTIONS = ("table_prefix", "pool_min_size", "pool_max_size", "connect_timeout", "charset")
_PLACEHOLDER = re.compile(r"\?")


@lru_cache(maxsize=512)
def _formatted(sql: str) -> str:
    """``?`` placeholders as the driver's ``%s``."""
    return _PLACEHOLDER.sub("%s", sql)


class _Session:
    """A :class:`~flowrra.scheduler.backends.base.Session` on an aiomysql connection."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._conn.cursor() as cursor:
            return await cursor.execute(_formatted(sql), tuple(params) or None)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self._conn.cursor() as cursor:
            await cursor.executemany(_formatted(sql), [tuple(row) for row in rows])

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        async with self._conn.cursor(aiomysql.DictCursor) as cursor:
            await cursor.execute(_formatted(sql), tuple(params) or None)
            return list(await cursor.fetchall())


class MySQLSchedulerBackend(PooledSQLSchedulerBackend):
    """Schedules in a MySQL or MariaDB database.

    Usage::

        MySQLSchedulerBackend("mysql://app:secret@db.example:3306/app")
        MySQLSchedulerBackend("mysql://root@127.0.0.1/test?table_prefix=t1_&charset=utf8mb4")

    The URL gives host (default localhost), port (3306), user (root), password (empty)
    and database (``flowrra``). Options (URL query or keywords): ``table_prefix``
    (default ``flowrra_``), ``pool_min_size`` (1), ``pool_max_size`` (10),
    ``connect_timeout`` (seconds, 10) and ``charset`` (``utf8mb4``).
    """

    kind = "MySQL"
    lock_clause = " FOR UPDATE SKIP LOCKED"
    insert_ignore = ("INSERT", " ON DUPLICATE KEY UPDATE schedule_id = schedule_id")

    def __init__(self, url: str, **options: Any) -> None:
        """Use the database at ``url``; see the class docstring for the options."""
        if aiomysql is None:
            raise ImportError(
                "The MySQL scheduler backend needs aiomysql:"
                " pip install -e '.[mysql]' in flowrra's clone"
            )
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = (set(query) | set(options)) - set(_OPTIONS)
        if unknown:
            raise ConfigError(
                f"Unknown option(s) {', '.join(sorted(unknown))} for the MySQL scheduler "
                f"backend in {redact_url(url)!r}; it takes {', '.join(_OPTIONS)}"
            )
        query.update(options)
        super().__init__(str(query.get("table_prefix", DEFAULT_TABLE_PREFIX)))
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 3306
        self.user = unquote(parts.username) if parts.username else "root"
        self.database = parts.path.lstrip("/") or "flowrra"
        self._init_pool(url, unquote(parts.password) if parts.password else "", query)
        self.charset = str(query.get("charset", "utf8mb4"))
        self._driver_errors = (pymysql.err.Error, OSError)
        self._integrity_errors = (pymysql.err.IntegrityError,)

    # ------------------------------------------------------------- dialect
    def _ddl(self) -> list[str]:
        s, r = self.schedules_table, self.runs_table
        return [
            f"""CREATE TABLE IF NOT EXISTS {s} (
                id VARCHAR(191) NOT NULL PRIMARY KEY, definition_key CHAR(64) NOT NULL,
                task_name VARCHAR(191) NOT NULL, schedule_type VARCHAR(16) NOT NULL,
                schedule TEXT NOT NULL, timezone VARCHAR(64) NULL,
                args LONGTEXT NOT NULL, kwargs LONGTEXT NOT NULL,
                enabled BOOLEAN NOT NULL DEFAULT TRUE, priority INT NOT NULL DEFAULT 0,
                max_retries INT NULL, retry_delay DOUBLE NULL, timeout DOUBLE NULL,
                missed_runs VARCHAR(16) NOT NULL, max_catchup INT NOT NULL,
                description TEXT NULL, next_run_at DATETIME(6) NULL,
                last_run_at DATETIME(6) NULL, created_at DATETIME(6) NOT NULL,
                updated_at DATETIME(6) NOT NULL, lease_owner VARCHAR(191) NULL,
                lease_until DATETIME(6) NULL,
                UNIQUE KEY {s}_definition (definition_key),
                KEY {s}_due (enabled, next_run_at),
                KEY {s}_lease (lease_until)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
            f"""CREATE TABLE IF NOT EXISTS {r} (
                id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                schedule_id VARCHAR(191) NOT NULL, due_at DATETIME(6) NOT NULL,
                fired_at DATETIME(6) NOT NULL, task_id VARCHAR(191) NULL,
                outcome VARCHAR(16) NOT NULL, error TEXT NULL, scheduler VARCHAR(191) NULL,
                UNIQUE KEY {r}_run (schedule_id, due_at)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        ]

    async def _create_tables(self, db: Any) -> None:
        await db.execute("SET SESSION sql_notes = 0")  # no "already exists" warnings
        try:
            for statement in self._ddl():
                await db.execute(statement)
        finally:
            await db.execute("SET SESSION sql_notes = 1")

    def _add_sql(self) -> str:
        marks = ", ".join("?" * len(COLUMNS))
        return (
            f"INSERT INTO {self.schedules_table} ({self._cols}) VALUES ({marks}) "
            "ON DUPLICATE KEY UPDATE id = id"
        )

    def _enc_dt(self, value: datetime | None) -> datetime | None:
        return None if value is None else value.astimezone(UTC).replace(tzinfo=None)

    def _dec_dt(self, value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str | bytes):
            value = datetime.fromisoformat(value.decode() if isinstance(value, bytes) else value)
        return value.replace(tzinfo=UTC)

    # ---------------------------------------------------------- connection
    async def _connect(self) -> None:
        if self._pool is not None:
            return
        self._pool = await aiomysql.create_pool(
            minsize=self.pool_min_size,
            maxsize=self.pool_max_size,
            host=self.host,
            port=self.port,
            user=self.user,
            password=self._password,
            db=self.database,
            charset=self.charset,
            autocommit=True,
            connect_timeout=self.connect_timeout,
            client_flag=CLIENT.FOUND_ROWS,
            init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        )

    async def _disconnect(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
            await pool.wait_closed()

    @asynccontextmanager
    async def _session(self, transaction: bool) -> AsyncIterator[_Session]:
        if self._pool is None:
            raise pymysql.err.InterfaceError("the connection pool is closed")
        async with self._pool.acquire() as conn:
            if not transaction:
                yield _Session(conn)
                return
            await conn.begin()
            try:
                yield _Session(conn)
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()
