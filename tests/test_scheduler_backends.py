"""The schedule stores: one contract class run against SQLite, PostgreSQL and MariaDB
(each test in its own table prefix, dropped after), plus URL parsing and connection
errors."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from flowrra.exceptions import BackendError, ConfigError
from flowrra.scheduler import (
    MissedRunPolicy,
    RunOutcome,
    ScheduledTask,
    ScheduleError,
    SchedulerBackendError,
    ScheduleRun,
    ScheduleType,
)
from flowrra.scheduler.backends import (
    BaseSchedulerBackend,
    MySQLSchedulerBackend,
    PostgreSQLSchedulerBackend,
    SQLiteSchedulerBackend,
    SQLSchedulerBackend,
    get_scheduler_backend,
)
from flowrra.scheduler.models import RunCompletion

from .scheduler_support import PerKindDatabase, make_backend
from .services import require_mysql, require_postgres

T0 = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def schedule(n: int = 0, **changes: object) -> ScheduledTask:
    task = ScheduledTask(
        id=f"s{n}",
        task_name="job",
        schedule_type=ScheduleType.INTERVAL,
        schedule="60",
        args=(n, "x"),
        kwargs={"b": 2, "a": [1, 2]},
        next_run_at=T0 + timedelta(seconds=n),
        created_at=T0 + timedelta(microseconds=n),
        updated_at=T0,
    )
    for name, value in changes.items():
        setattr(task, name, value)
    return task


class BackendContract(PerKindDatabase):
    """Every scheduler backend keeps this contract. Subclasses set ``kind``."""

    @pytest.fixture
    async def backend(self, url: str) -> AsyncIterator[SQLSchedulerBackend]:
        backend = make_backend(url)
        yield backend
        await backend.close()

    @pytest.fixture
    async def other(self, url: str) -> AsyncIterator[SQLSchedulerBackend]:
        """A second backend on the same tables: another process's view."""
        backend = make_backend(url)
        yield backend
        await backend.close()

    async def test_round_trip_keeps_every_field(self, backend) -> None:
        task = schedule(
            1,
            description="daily report",
            max_retries=2,
            retry_delay=0.5,
            timeout=3.0,
            priority=-4,
            timezone="Europe/Berlin",
            missed_runs=MissedRunPolicy.RUN_ALL,
            max_catchup=7,
            last_run_at=T0 - timedelta(days=1),
        )
        await backend.create(task)
        stored = await backend.get("s1")
        assert stored == task
        assert stored.next_run_at.tzinfo is not None and stored.args == (1, "x")
        assert await backend.get("missing") is None

    async def test_schedules_frame_from_this_backend(self, backend) -> None:
        pytest.importorskip("pandas")
        from flowrra.frames import schedules_frame

        await backend.create(schedule(1, description="daily report", priority=3))
        frame = schedules_frame(await backend.list_all())
        row = frame.iloc[0]
        assert (row["schedule_id"], row["description"], row["priority"]) == (
            "s1",
            "daily report",
            3,
        )
        assert row["args"] == (1, "x") and str(frame["next_run_at"].dt.tz) == "UTC"

    async def test_add_is_idempotent_on_the_definition(self, backend, other) -> None:
        first = await backend.add(schedule(1))
        again = await other.add(schedule(1, id="another-id", priority=9))
        assert again.id == first.id == "s1" and again.priority == 0
        reordered = await backend.add(schedule(1, id="x", kwargs={"a": [1, 2], "b": 2}))
        assert reordered.id == "s1"
        different = await backend.add(schedule(1, id="y", args=(1, "y")))
        assert different.id == "y"
        assert len(await backend.list_all()) == 2

    async def test_concurrent_adds_from_two_processes_make_one_row(self, backend, other) -> None:
        await backend.initialize()
        await other.initialize()
        adds = [(backend if i % 2 else other).add(schedule(5, id=f"c{i}")) for i in range(10)]
        stored = await asyncio.gather(*adds)
        assert len({s.id for s in stored}) == 1
        assert len(await backend.list_all()) == 1

    async def test_an_id_taken_by_another_definition_is_an_error(self, backend) -> None:
        await backend.add(schedule(1))
        with pytest.raises(ScheduleError, match="already used"):
            await backend.add(schedule(2, id="s1"))
        with pytest.raises(ScheduleError, match="already exists"):
            await backend.create(schedule(3, id="s1"))
        assert [t.id for t in await backend.list_all()] == ["s1"]

    async def test_0_1_8_crud(self, backend) -> None:
        for n in (1, 2, 3):
            await backend.create(schedule(n))
        task = await backend.get("s2")
        task.enabled = False
        await backend.update(task)
        assert [t.id for t in await backend.list_enabled()] == ["s1", "s3"]
        assert [t.id for t in await backend.list_due(T0 + timedelta(seconds=2))] == ["s1"]
        await backend.update_run_times("s1", T0, T0 + timedelta(hours=1))
        assert (await backend.get("s1")).next_run_at == T0 + timedelta(hours=1)
        found = await backend.find_by_definition(
            "job", ScheduleType.INTERVAL, "60", (3, "x"), {"a": [1, 2], "b": 2}
        )
        assert found is not None and found.id == "s3"
        with pytest.raises(ScheduleError, match="not found"):
            await backend.update_run_times("nope", None, None)
        with pytest.raises(ScheduleError, match="not found"):
            await backend.update(schedule(9))
        assert await backend.delete("s3") and not await backend.delete("s3")
        assert await backend.count() == (2, 1)
        assert await backend.clear() == 2 and await backend.list_all() == []

    async def test_claims_are_exclusive_until_the_lease_ends(self, backend, other) -> None:
        for n in range(5):
            await backend.create(schedule(n))
        now, lease = T0 + timedelta(seconds=10), T0 + timedelta(seconds=40)
        mine = await backend.claim_due("A", now, lease, ["job"], 3)
        theirs = await other.claim_due("B", now, lease, ["job"], 10)
        assert [t.id for t in mine] == ["s0", "s1", "s2"]
        assert [t.id for t in theirs] == ["s3", "s4"]
        assert mine[0].lease_owner == "A" and mine[0].lease_until == lease
        assert await other.claim_due("B", now, lease, ["job"], 10) == []
        assert await other.claim_due("B", now, lease, ["other-task"], 10) == []
        later = lease + timedelta(seconds=1)  # A died: its leases expired
        taken = await other.claim_due("B", later, later + timedelta(seconds=30), ["job"], 10)
        assert {t.id for t in taken} == {"s0", "s1", "s2", "s3", "s4"}

    async def test_concurrent_claims_never_overlap(self, backend, other) -> None:
        for n in range(40):
            await backend.create(schedule(n))
        now, lease = T0 + timedelta(seconds=100), T0 + timedelta(seconds=400)
        claims = await asyncio.gather(
            *[
                (backend if i % 2 else other).claim_due(f"o{i}", now, lease, ["job"], 3)
                for i in range(20)
            ]
        )
        ids = [t.id for claim in claims for t in claim]
        assert len(ids) == len(set(ids))  # no run leased twice
        rest = await backend.claim_due("last", now, lease, ["job"], 100)
        assert sorted(ids + [t.id for t in rest]) == sorted(f"s{n}" for n in range(40))

    async def test_complete_moves_on_clears_the_lease_and_records_runs(self, backend) -> None:
        await backend.create(schedule(1))
        await backend.create(schedule(2, schedule_type=ScheduleType.ONE_TIME, schedule="x"))
        now = T0 + timedelta(seconds=5)
        await backend.claim_due("A", now, now + timedelta(seconds=30), ["job"], 10)
        run = ScheduleRun(
            "s1", T0 + timedelta(seconds=1), now, "t1", RunOutcome.SUBMITTED, None, "A"
        )
        done = [
            RunCompletion("s1", now, T0 + timedelta(seconds=61), True, [run]),
            RunCompletion("s2", now, None, False, []),
        ]
        await backend.complete_runs("B", done)  # not B's lease: nothing moves
        assert (await backend.get("s1")).lease_owner == "A"
        await backend.complete_runs("A", done)
        first, once = await backend.get("s1"), await backend.get("s2")
        assert first.lease_owner is None and first.lease_until is None
        assert first.next_run_at == T0 + timedelta(seconds=61) and first.last_run_at == now
        assert not once.enabled and once.next_run_at is None
        await backend.add_runs([run])  # recorded once only
        assert await backend.list_runs("s1") == [run]
        assert await backend.list_runs("s2") == []

    async def test_next_due_time_counts_leases_and_task_names(self, backend) -> None:
        now = T0 + timedelta(seconds=10)
        assert await backend.next_due_time(now, ["job"]) is None
        await backend.create(schedule(1))
        await backend.create(schedule(2, task_name="unknown", next_run_at=T0))
        await backend.create(schedule(3, enabled=False, next_run_at=T0))
        assert await backend.next_due_time(now, ["job"]) == T0 + timedelta(seconds=1)
        await backend.claim_due("A", now, now + timedelta(seconds=30), ["job"], 10)
        assert await backend.next_due_time(now, ["job"]) == now + timedelta(seconds=30)
        assert await backend.release("A") == 1
        assert await backend.next_due_time(now, ["job"]) == T0 + timedelta(seconds=1)
        assert await backend.next_due_time(now, []) is None

    async def test_history_is_pruned_to_the_latest(self, backend) -> None:
        await backend.create(schedule(1))
        runs = [
            ScheduleRun("s1", T0 + timedelta(seconds=i), T0, None, RunOutcome.SKIPPED, "late", "A")
            for i in range(8)
        ]
        await backend.add_runs(runs)
        assert await backend.prune_runs(["s1", "s9"], keep=3) == 5
        assert [r.due_at for r in await backend.list_runs("s1")] == [
            T0 + timedelta(seconds=i) for i in (7, 6, 5)
        ]
        assert await backend.delete("s1") and await backend.list_runs("s1") == []

    async def test_schedules_survive_a_reconnect(self, url, backend) -> None:
        await backend.add(schedule(1))
        await backend.close()
        reopened = make_backend(url)
        try:
            assert (await reopened.get("s1")) == schedule(1)
        finally:
            await reopened.close()
        assert (await backend.get("s1")).id == "s1"  # a closed backend reconnects


class TestSQLiteBackend(BackendContract):
    kind = "sqlite"

    async def test_memory_database_keeps_its_schedules_over_close(self) -> None:
        backend = SQLiteSchedulerBackend(":memory:")
        await backend.add(schedule(1))
        await backend.close()
        assert (await backend.get("s1")).id == "s1"
        await backend.close()


class TestPostgreSQLBackend(BackendContract):
    kind = "postgresql"


class TestMySQLBackend(BackendContract):
    kind = "mysql"


# ------------------------------------------------------------------ URLs
def test_urls_pick_the_backend(tmp_path: Path) -> None:
    default = get_scheduler_backend()
    assert isinstance(default, SQLiteSchedulerBackend)
    assert default.database_path == ".flowrra_schedule.db"
    assert get_scheduler_backend("sqlite:///relative.db").database_path == "relative.db"
    absolute = get_scheduler_backend(f"sqlite:///{tmp_path}/x.db?table_prefix=p_&timeout=2")
    assert absolute.database_path == f"{tmp_path}/x.db" and absolute.database_path.startswith("/")
    assert absolute.table_prefix == "p_" and absolute.timeout == 2.0
    assert get_scheduler_backend("sqlite:///:memory:").is_memory
    assert get_scheduler_backend("plain.db").database_path == "plain.db"
    pg = get_scheduler_backend("postgres://u:secret@db:5433/app?table_prefix=a_&pool_max_size=3")
    assert isinstance(pg, PostgreSQLSchedulerBackend) and pg.pool_max_size == 3
    assert "secret" not in repr(pg) and pg.display_url == "postgres://u:***@db:5433/app?" + (
        "table_prefix=a_&pool_max_size=3"
    )
    assert isinstance(get_scheduler_backend("postgresql+asyncpg://db/app"), BaseSchedulerBackend)
    my = get_scheduler_backend("mysql+aiomysql://bob:pw@db/app?charset=utf8mb4&table_prefix=m_")
    assert isinstance(my, MySQLSchedulerBackend)
    assert (my.host, my.port, my.user, my.database, my.table_prefix) == (
        "db",
        3306,
        "bob",
        "app",
        "m_",
    )
    backend = SQLiteSchedulerBackend(":memory:")
    assert get_scheduler_backend(backend) is backend


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mongodb://localhost/x", "Unsupported scheduler backend URL scheme: 'mongodb'"),
        ("sqlite:///x.db?bogus=1", "Unknown option"),
        ("sqlite://host/x.db", "no host"),
        ("mysql://localhost/x?sslmode=1", "Unknown option"),
        ("postgresql://localhost/x?pool_max_size=zero", "pool_max_size"),
        ("sqlite:///x.db?table_prefix=drop;table", "table_prefix"),
    ],
)
def test_bad_urls_are_clear_value_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        get_scheduler_backend(url)
    assert isinstance(info.value, ValueError)


async def test_unreachable_postgresql_names_the_url_without_its_password() -> None:
    require_postgres()
    backend = get_scheduler_backend(
        "postgresql://postgres:hunter2@127.0.0.1:1/test?connect_timeout=2"
    )
    with pytest.raises(SchedulerBackendError) as info:
        await backend.add(schedule(1))
    text = str(info.value)
    assert "postgresql://postgres:***@127.0.0.1:1/test" in text and "hunter2" not in text
    assert isinstance(info.value, BackendError)
    await backend.close()


async def test_unreachable_mysql_names_the_url_without_its_password() -> None:
    require_mysql()
    backend = get_scheduler_backend("mysql://root:hunter2@127.0.0.1:1/test?connect_timeout=2")
    with pytest.raises(SchedulerBackendError) as info:
        await backend.initialize()
    assert "mysql://root:***@127.0.0.1:1/test" in str(info.value)
    assert "hunter2" not in str(info.value)
    await backend.close()


async def test_a_missing_database_is_a_clear_error() -> None:
    require_postgres()
    backend = get_scheduler_backend("postgresql://postgres@127.0.0.1:5432/no_such_db_here")
    with pytest.raises(SchedulerBackendError, match="no_such_db_here"):
        await backend.list_all()
    await backend.close()


async def test_an_unopenable_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    backend = get_scheduler_backend(f"sqlite:///{tmp_path}/missing/dir/x.db")
    with pytest.raises(SchedulerBackendError, match=r"missing/dir/x\.db"):
        await backend.list_all()
    await backend.close()


async def test_datetimes_come_back_in_utc(tmp_path: Path) -> None:
    """Datetimes come back aware UTC whatever zone they were written in."""
    backend = SQLiteSchedulerBackend(str(tmp_path / "tz.db"))
    plus_five = datetime(2030, 1, 1, 17, tzinfo=UTC).astimezone(ZoneInfo("Asia/Karachi"))
    await backend.create(schedule(1, next_run_at=plus_five))
    stored = await backend.get("s1")
    assert stored.next_run_at == plus_five and stored.next_run_at.utcoffset() == timedelta(0)
    await backend.close()


def test_an_unclosed_sqlite_backend_does_not_block_exit(tmp_path: Path) -> None:
    code = (
        "import asyncio\n"
        "from flowrra.scheduler.backends import get_scheduler_backend\n"
        f"backend = get_scheduler_backend('sqlite:///{tmp_path}/open.db')\n"
        "print(asyncio.run(backend.list_all()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
