"""Passwords are never shown: not in the reprs of the configs, the scheduler or its
backends, not in connection errors, not in a schedules DataFrame, whether the password
is in the URL's user part or a ``?password=`` query parameter."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flowrra import BackendConfig, BrokerConfig, Config, ConfigError, Flowrra, SchedulerConfig
from flowrra.registry import TaskRegistry
from flowrra.scheduler import Scheduler, SchedulerBackendError
from flowrra.scheduler.backends import get_scheduler_backend, redact_url

from .scheduler_support import drop, unique_prefix
from .services import POSTGRES_URL, require_postgres

SECRET = "s3cr3t-Pa55"

REDIS_URLS = [
    f"redis://:{SECRET}@localhost:6379/0",
    f"redis://worker:{SECRET}@localhost:6379/1",
    f"rediss://localhost:6380/0?password={SECRET}",
    f"redis://localhost:6379/0?ssl_cert_reqs=none&password={SECRET}",
]
SQL_URLS = [
    f"postgresql://app:{SECRET}@db.example:5432/app",
    f"postgresql://app@db.example/app?password={SECRET}&sslmode=disable",
    f"mysql://root:{SECRET}@db.example:3306/app",
]


def registry() -> TaskRegistry:
    tasks = TaskRegistry()

    @tasks.task()
    async def report() -> None: ...

    return tasks


@pytest.mark.parametrize("url", REDIS_URLS)
def test_config_reprs_hide_the_password(url: str) -> None:
    broker, backend = BrokerConfig(url), BackendConfig(url)
    scheduler = SchedulerConfig(database_url=SQL_URLS[0], enabled=True)
    config = Config(broker=broker, backend=backend, scheduler=scheduler)
    for shown in (repr(broker), repr(backend), repr(scheduler), repr(config), str(config)):
        assert SECRET not in shown
        assert "***" in shown
    assert repr(broker).startswith("BrokerConfig(url=")
    assert "max_connections=50" in repr(broker) and "ttl=None" in repr(backend)


def test_the_password_is_still_there_to_connect_with() -> None:
    broker = BrokerConfig(REDIS_URLS[0], max_connections=5)
    assert broker.url == REDIS_URLS[0]
    assert broker == BrokerConfig(REDIS_URLS[0], max_connections=5)
    assert broker != BrokerConfig(REDIS_URLS[1], max_connections=5)


@pytest.mark.parametrize("url", SQL_URLS)
def test_scheduler_and_backend_reprs_hide_the_password(url: str) -> None:
    backend = get_scheduler_backend(url)
    scheduler = Scheduler(backend, registry())
    for shown in (repr(backend), repr(scheduler), backend.display_url, redact_url(url)):
        assert SECRET not in shown
        assert "***" in shown


def test_an_unknown_option_error_hides_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        get_scheduler_backend(f"mysql://root@localhost/app?password={SECRET}&colour=red")
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://app:{SECRET}@127.0.0.1:1/app?connect_timeout=2",
        f"postgresql://app@127.0.0.1:1/app?password={SECRET}&connect_timeout=2",
        f"mysql://root:{SECRET}@127.0.0.1:1/app?connect_timeout=2",
    ],
)
async def test_a_failed_start_hides_the_password(url: str) -> None:
    recorded: list[str] = []

    async def submit(task_name: str, args: tuple, kwargs: dict, **options: object) -> str:
        recorded.append(task_name)
        return "never"

    scheduler = Scheduler(url, registry(), submit=submit)  # type: ignore[arg-type]
    with pytest.raises(SchedulerBackendError) as info:
        await scheduler.start()
    assert SECRET not in str(info.value) and "***" in str(info.value)
    assert not scheduler.is_running and recorded == []


@pytest.fixture
async def pg_url_with_password() -> AsyncIterator[str]:
    require_postgres()
    # the test server trusts local connections, so any password connects
    url = f"{POSTGRES_URL}?password={SECRET}&table_prefix={unique_prefix()}"
    yield url
    await drop(url)


async def test_schedules_frame_and_app_repr_hide_the_password(pg_url_with_password: str) -> None:
    pytest.importorskip("pandas")
    app = Flowrra()

    @app.task()
    async def report() -> None: ...

    scheduler = app.create_scheduler(pg_url_with_password)
    try:
        await scheduler.schedule_interval("report", 60, description="nightly")
        frame = await scheduler.schedules_frame()
        assert len(frame) == 1
        shown = [frame.to_string(), repr(frame.attrs), repr(scheduler), repr(app)]
        assert all(SECRET not in text for text in shown)
    finally:
        await scheduler.backend.close()
