"""Config: defaults, validation with clear messages, and FLOWRRA_* environment variables."""

from __future__ import annotations

import pytest

from flowrra import (
    BackendConfig,
    BrokerConfig,
    BrokerError,
    Config,
    ConfigError,
    ExecutorConfig,
    FlowrraError,
    SchedulerConfig,
)
from flowrra.backends.factory import get_backend
from flowrra.backends.memory import InMemoryBackend
from flowrra.brokers.factory import get_broker
from flowrra.exceptions import BackendError


def test_defaults_match_the_reference() -> None:
    executor = ExecutorConfig()
    assert (executor.io_workers, executor.cpu_workers, executor.max_queue_size) == (4, 2, 1000)
    assert (executor.max_retries, executor.retry_delay) == (3, 1.0)
    broker = BrokerConfig("redis://localhost")
    assert (broker.max_connections, broker.socket_timeout, broker.retry_on_timeout) == (
        50,
        5.0,
        True,
    )
    assert broker.queue_key is None
    assert BackendConfig("redis://x").ttl is None
    scheduler = SchedulerConfig()
    assert (scheduler.database_url, scheduler.check_interval, scheduler.enabled) == (
        None,
        60.0,
        False,
    )
    config = Config()
    assert config.broker is None and config.backend is None and config.scheduler is None
    assert Config(executor=None).executor == ExecutorConfig()  # type: ignore[arg-type]
    assert isinstance(config.create_backend(), InMemoryBackend)
    assert config.create_broker() is None
    assert config.create_scheduler_backend() is None


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ExecutorConfig(io_workers=0), "io_workers must be at least 1"),
        (lambda: ExecutorConfig(cpu_workers=0), "cpu_workers must be at least 1"),
        (lambda: ExecutorConfig(max_queue_size=0), "max_queue_size must be at least 1"),
        (lambda: ExecutorConfig(max_retries=-1), "max_retries must be non-negative"),
        (lambda: ExecutorConfig(retry_delay=-1), "retry_delay must be non-negative"),
        (lambda: ExecutorConfig(io_workers="4"), "io_workers must be at least 1"),
        (lambda: ExecutorConfig(start_method="thread"), "start_method must be one of"),
        (lambda: BrokerConfig(""), "Broker URL is required"),
        (lambda: BrokerConfig("redis://x", max_connections=0), "max_connections must be"),
        (lambda: BackendConfig("redis://x", ttl=0), "ttl must be at least 1 second"),
        (lambda: BackendConfig("redis://x", socket_timeout=-1), "socket_timeout must be"),
        (lambda: SchedulerConfig(check_interval=0), "check_interval must be positive"),
    ],
)
def test_invalid_values_raise_a_clear_config_error(build, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        build()
    assert isinstance(info.value, ValueError) and isinstance(info.value, FlowrraError)


def test_from_env_with_no_variables_gives_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("FLOWRRA_"):
            monkeypatch.delenv(name)
    assert Config.from_env() == Config()


def test_from_env_reads_every_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWRRA_EXECUTOR_IO_WORKERS", "8")
    monkeypatch.setenv("FLOWRRA_EXECUTOR_CPU_WORKERS", "3")
    monkeypatch.setenv("FLOWRRA_EXECUTOR_RETRY_DELAY", "0.5")
    monkeypatch.setenv("FLOWRRA_EXECUTOR_START_METHOD", "spawn")
    monkeypatch.setenv("FLOWRRA_BACKEND_URL", "memory://?max_results=10")
    monkeypatch.setenv("FLOWRRA_BACKEND_TTL", "60")
    monkeypatch.setenv("FLOWRRA_BROKER_URL", "redis://localhost:6379/0")
    monkeypatch.setenv("FLOWRRA_BROKER_RETRY_ON_TIMEOUT", "no")
    monkeypatch.setenv("FLOWRRA_SCHEDULER_ENABLED", "yes")
    monkeypatch.setenv("FLOWRRA_SCHEDULER_CHECK_INTERVAL", "5")
    config = Config.from_env()
    assert config.executor.io_workers == 8 and config.executor.cpu_workers == 3
    assert config.executor.retry_delay == 0.5 and config.executor.start_method == "spawn"
    assert config.backend == BackendConfig("memory://?max_results=10", ttl=60)
    assert config.broker is not None and config.broker.retry_on_timeout is False
    assert config.scheduler == SchedulerConfig(check_interval=5.0, enabled=True)


def test_from_env_custom_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYAPP_EXECUTOR_IO_WORKERS", "2")
    assert Config.from_env(prefix="MYAPP_").executor.io_workers == 2


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FLOWRRA_EXECUTOR_IO_WORKERS", "many", "FLOWRRA_EXECUTOR_IO_WORKERS must be a whole"),
        ("FLOWRRA_EXECUTOR_RETRY_DELAY", "", "FLOWRRA_EXECUTOR_RETRY_DELAY must be a number"),
        ("FLOWRRA_EXECUTOR_IO_WORKERS", "0", "FLOWRRA_EXECUTOR_IO_WORKERS"),
        ("FLOWRRA_EXECUTOR_START_METHOD", "thread", "FLOWRRA_EXECUTOR_START_METHOD"),
    ],
)
def test_from_env_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=message):
        Config.from_env()


def test_memory_backend_url() -> None:
    backend = get_backend("memory://?max_results=5")
    assert isinstance(backend, InMemoryBackend) and backend.max_results == 5
    with pytest.raises(ConfigError, match="takes max_results"):
        get_backend("memory://?size=5")
    with pytest.raises(ConfigError, match="must be a whole number"):
        get_backend("memory://?max_results=lots")


def test_unknown_schemes_raise_clear_errors() -> None:
    with pytest.raises(BackendError, match="Unsupported backend URL scheme: 'mongodb'"):
        get_backend("mongodb://localhost")
    with pytest.raises(BrokerError, match="Unsupported broker URL scheme: 'amqp'"):
        get_broker("amqp://localhost")
    with pytest.raises(BackendError, match="Got int"):
        get_backend(42)  # type: ignore[arg-type]
