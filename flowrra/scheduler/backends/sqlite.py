"""Schedules in a SQLite file (aiosqlite), the default store.

Several scheduler processes may share one file: a claim runs in ``BEGIN IMMEDIATE``,
which holds SQLite's write lock, so no two schedulers lease the same run. The file is in
WAL mode, so readers do not wait for writers.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiosqlite

from flowrra.clock import UTC
from flowrra.exceptions import ConfigError
from flowrra.scheduler.backends.base import (
    COLUMNS,
    DEFAULT_TABLE_PREFIX,
    SQLSchedulerBackend,
    redact_url,
)

__all__ = ["DEFAULT_DATABASE_PATH", "SQLiteSchedulerBackend"]

logger = logging.getLogger("flowrra.scheduler")

#: Where schedules live when no URL is given.
DEFAULT_DATABASE_PATH = ".flowrra_schedule.db"
_MEMORY = ":memory:"
_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # fixed width, UTC: text order is time order
_FIRST_PAUSE, _MAX_PAUSE = 0.002, 0.1  # seconds between tries on a locked database


class _Session:
    """A :class:`~flowrra.scheduler.backends.base.Session` on an aiosqlite connection."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = await self._conn.execute(sql, params)
        count = cursor.rowcount
        await cursor.close()
        return count

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        cursor = await self._conn.executemany(sql, rows)
        await cursor.close()

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        rows = await self._conn.execute_fetchall(sql, params)
        return [dict(row) for row in rows]


class SQLiteSchedulerBackend(SQLSchedulerBackend):
    """Schedules in a SQLite database file.

    Usage::

        SQLiteSchedulerBackend()                          # .flowrra_schedule.db
        SQLiteSchedulerBackend("/var/lib/app/schedule.db", table_prefix="app_")
        SQLiteSchedulerBackend.from_url("sqlite:///:memory:")

    Options: ``table_prefix`` (default ``flowrra_``) and ``timeout``, the seconds to wait
    for another process's write lock (default 5). An in-memory database (``:memory:``)
    keeps its schedules when closed and reopened by the same backend object (a
    scheduler's stop and start), not across processes.
    """

    kind = "SQLite"
    lock_clause = ""
    insert_ignore = ("INSERT OR IGNORE", "")
    _driver_errors = (sqlite3.Error,)
    _integrity_errors = (sqlite3.IntegrityError,)

    def __init__(
        self,
        database_path: str = DEFAULT_DATABASE_PATH,
        *,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        timeout: float = 5.0,
    ) -> None:
        """Use the database at ``database_path`` (``:memory:`` for one in memory)."""
        super().__init__(table_prefix)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            raise ConfigError(f"timeout must be a number of seconds >= 0, got {timeout!r}")
        self.database_path = str(database_path)
        self.timeout = float(timeout)
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._snapshot: sqlite3.Connection | None = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteSchedulerBackend:
        """A backend for ``sqlite:///relative.db``, ``sqlite:////absolute/path.db`` or
        ``sqlite:///:memory:``, with ``?table_prefix=...&timeout=...``; keyword
        ``options`` override the URL's."""
        parts = urlsplit(url)
        if parts.netloc:
            raise ConfigError(
                f"SQLite URLs have no host: use sqlite:///relative.db or "
                f"sqlite:////absolute/path.db, got {redact_url(url)!r}"
            )
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = set(query) - {"table_prefix", "timeout"}
        if unknown:
            raise ConfigError(
                f"Unknown option(s) {', '.join(sorted(unknown))} in {redact_url(url)!r}; SQLite "
                "URLs take "
                "table_prefix and timeout"
            )
        settings: dict[str, Any] = {}
        if "table_prefix" in query:
            settings["table_prefix"] = query["table_prefix"]
        if "timeout" in query:
            settings["timeout"] = _number(query["timeout"], "timeout", url)
        settings.update(options)
        return cls(path or DEFAULT_DATABASE_PATH, **settings)

    @property
    def display_url(self) -> str:
        """The database as a URL."""
        return f"sqlite:///{self.database_path}"

    @property
    def is_memory(self) -> bool:
        """True for an in-memory database."""
        return self.database_path == _MEMORY or self.database_path.startswith("file::memory:")

    # ------------------------------------------------------------- dialect
    def _ddl(self) -> list[str]:
        s, r = self.schedules_table, self.runs_table
        return [
            f"""CREATE TABLE IF NOT EXISTS {s} (
                id TEXT PRIMARY KEY, definition_key TEXT NOT NULL UNIQUE,
                task_name TEXT NOT NULL, schedule_type TEXT NOT NULL, schedule TEXT NOT NULL,
                timezone TEXT, args TEXT NOT NULL, kwargs TEXT NOT NULL,
                enabled INTEGER NOT NULL DEFAULT 1, priority INTEGER NOT NULL DEFAULT 0,
                max_retries INTEGER, retry_delay REAL, timeout REAL,
                missed_runs TEXT NOT NULL, max_catchup INTEGER NOT NULL, description TEXT,
                next_run_at TEXT, last_run_at TEXT, created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL, lease_owner TEXT, lease_until TEXT)""",
            f"CREATE INDEX IF NOT EXISTS {s}_due ON {s} (enabled, next_run_at)",
            f"CREATE INDEX IF NOT EXISTS {s}_lease ON {s} (lease_until)",
            f"""CREATE TABLE IF NOT EXISTS {r} (
                id INTEGER PRIMARY KEY AUTOINCREMENT, schedule_id TEXT NOT NULL,
                due_at TEXT NOT NULL, fired_at TEXT NOT NULL, task_id TEXT,
                outcome TEXT NOT NULL, error TEXT, scheduler TEXT,
                UNIQUE (schedule_id, due_at))""",
        ]

    def _add_sql(self) -> str:
        marks = ", ".join("?" * len(COLUMNS))
        return (
            f"INSERT INTO {self.schedules_table} ({self._cols}) VALUES ({marks}) "
            "ON CONFLICT (definition_key) DO NOTHING"
        )

    def _enc_dt(self, value: datetime | None) -> str | None:
        return None if value is None else value.astimezone(UTC).strftime(_FORMAT)

    def _dec_dt(self, value: Any) -> datetime | None:
        if value is None:
            return None
        return datetime.strptime(value, _FORMAT).replace(tzinfo=UTC)

    # ---------------------------------------------------------- connection
    def _connector(self) -> aiosqlite.Connection:
        if not self.is_memory:
            return aiosqlite.connect(self.database_path, isolation_level=None, timeout=self.timeout)
        snapshot = self._snapshot

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(_MEMORY, check_same_thread=False, isolation_level=None)
            if snapshot is not None:
                snapshot.backup(conn)
            return conn

        return aiosqlite.Connection(connect, 64)

    async def _connect(self) -> None:
        self._lock = asyncio.Lock()
        if self._conn is not None:
            return
        folder = Path(self.database_path).parent
        if not self.is_memory and not folder.is_dir():
            raise sqlite3.OperationalError(f"unable to open database file: no folder {folder}")
        pending = self._connector()
        worker = getattr(pending, "_thread", None)
        if isinstance(worker, threading.Thread):
            # a backend nobody closed must not keep the interpreter from exiting
            worker.daemon = True
        conn = await pending
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            if not self.is_memory:
                await self._when_free(functools.partial(_pragma, conn, "journal_mode = WAL"))
        except BaseException:
            await conn.close()
            raise
        self._conn = conn

    async def _when_free(self, attempt: Callable[[], Awaitable[Any]]) -> None:
        """Run ``attempt``, again while the database is locked, for at most ``timeout``.

        SQLite waits for a lock (``busy_timeout``) except where waiting could deadlock:
        then it fails at once with "database is locked". Schedulers starting together on
        a fresh file hit that when they switch it to WAL, so the switch and the table
        creation are retried, with short growing pauses, within the lock timeout.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        pause = _FIRST_PAUSE
        while True:
            try:
                await attempt()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if loop.time() + pause > deadline:
                    raise sqlite3.OperationalError(
                        f"database is locked: another process held it for longer than the "
                        f"lock timeout ({self.timeout:g}s); raise it with ?timeout= in the URL"
                    ) from exc
            logger.debug("SQLite database %s is locked; trying again", self.database_path)
            await asyncio.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, _MAX_PAUSE)

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self.is_memory:
            keep = sqlite3.connect(_MEMORY, check_same_thread=False)
            await conn.backup(keep)
            self._snapshot = keep
        await conn.close()

    async def _close_here(self) -> None:
        """Close the connection (from any event loop); the next call reopens it."""
        await self._disconnect()
        self._ready = False
        self._loop = None

    @asynccontextmanager
    async def _session(self, transaction: bool) -> AsyncIterator[_Session]:
        async with self._lock:
            conn = self._conn
            if conn is None:
                raise sqlite3.OperationalError("the connection is closed")
            if not transaction:
                yield _Session(conn)
                return
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield _Session(conn)
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")


async def _pragma(conn: aiosqlite.Connection, pragma: str) -> None:
    cursor = await conn.execute(f"PRAGMA {pragma}")
    await cursor.close()


def _number(raw: str, name: str, url: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} in {redact_url(url)!r} must be a number, got {raw!r}") from None
