"""Configuration: one dataclass per component, gathered in :class:`Config`.

Every value is checked when the dataclass is built; a bad one raises
:class:`~flowrra.exceptions.ConfigError` (a ``ValueError``) that says what is allowed.
:meth:`Config.from_env` reads the same values from ``FLOWRRA_*`` environment variables.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from flowrra.exceptions import ConfigError

if TYPE_CHECKING:
    from flowrra.backends.base import BaseResultBackend
    from flowrra.brokers.base import BaseBroker

__all__ = [
    "BackendConfig",
    "BrokerConfig",
    "Config",
    "ExecutorConfig",
    "SchedulerConfig",
    "default_start_method",
]

START_METHODS = ("forkserver", "spawn", "fork")
DEFAULT_QUEUE_KEY = "flowrra:queue"


def default_start_method() -> str:
    """forkserver on Linux, spawn elsewhere: never an implicit fork of a threaded process."""
    return "forkserver" if sys.platform.startswith("linux") else "spawn"


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shown_url(url: str) -> str:
    """``url`` as it may be shown: its password (userinfo or ``?password=``) hidden."""
    from flowrra.redis_client import redacted  # imports redis only when it connects

    try:
        return redacted(url)
    except ValueError:  # e.g. a port that is not a number: show nothing that may be secret
        return "<unparseable URL>"


def _repr_hiding_passwords(config: Any) -> str:
    """The dataclass repr of ``config`` with every URL field shown by :func:`_shown_url`.

    The fields, their order and equality stay the dataclass's own; only what is printed
    changes, so a config can be logged or shown in a notebook without its passwords.
    """
    shown = []
    for item in fields(config):
        if not item.repr:
            continue
        value = getattr(config, item.name)
        if item.name.endswith("url") and isinstance(value, str):
            shown.append(f"{item.name}={_shown_url(value)!r}")
        else:
            shown.append(f"{item.name}={value!r}")
    return f"{type(config).__name__}({', '.join(shown)})"


_DB_NUMBER = re.compile(r"[0-9]+")


def _check_redis_database(url: str) -> None:
    """A ``redis://`` or ``rediss://`` URL's path must be a database number (``/0``) or
    empty, and ``?db=`` a whole number: redis-py would silently use database 0 for
    ``redis://host/cache``. Other schemes (``unix://``, ``memory://``) are not checked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return  # the factory reports URLs that do not parse
    if parts.scheme.lower() not in ("redis", "rediss"):
        return
    path = unquote(parts.path)
    number = path[1:] if path.startswith("/") else path
    if number and not _DB_NUMBER.fullmatch(number):
        raise ConfigError(
            f"Redis URL {_shown_url(url)!r} has the path {path!r}: the path must be a "
            "database number like /0 (or leave it out and pass ?db=0)"
        )
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "db" and not _DB_NUMBER.fullmatch(value):
            raise ConfigError(
                f"Redis URL {_shown_url(url)!r} has db={value!r}: it must be a database "
                "number like ?db=0"
            )


def _check_retry_budget(budget: object) -> None:
    _require(
        _is_number(budget) and 0 <= budget < math.inf,  # type: ignore[operator]
        "retry_budget must be a finite number of seconds >= 0 (how long a Redis call rides "
        "out a lost connection)",
    )


def _check_connection(max_connections: object, socket_timeout: object) -> None:
    _require(
        _is_int(max_connections) and max_connections >= 1,  # type: ignore[operator]
        "max_connections must be at least 1",
    )
    _require(
        _is_number(socket_timeout) and socket_timeout >= 0,  # type: ignore[operator]
        "socket_timeout must be non-negative",
    )


@dataclass
class BrokerConfig:
    """Where tasks are queued when they leave this process (e.g. Redis).

    Usage::

        BrokerConfig(url="redis://localhost:6379/0", queue_key="myapp:queue")

    ``queue_key`` is the key prefix of the queues; each executor kind appends its own
    suffix (``:io``, ``:cpu``), so IO and CPU tasks never share a queue.

    Additions of flowrra 0.2: ``retry_budget`` is how many seconds each Redis call rides
    out a lost connection (exponential backoff) before it raises ``BrokerError``;
    ``max_deliveries`` is how many times a task may be delivered (the first time plus one
    per lease that lapsed because its worker died or blocked) before it ends FAILED.
    """

    url: str
    max_connections: int = 50
    socket_timeout: float = 5.0
    retry_on_timeout: bool = True
    queue_key: str | None = None
    retry_budget: float = 10.0
    max_deliveries: int = 5

    def __post_init__(self) -> None:
        """Validate broker configuration."""
        _require(isinstance(self.url, str) and bool(self.url), "Broker URL is required")
        _check_redis_database(self.url)
        _check_connection(self.max_connections, self.socket_timeout)
        _check_retry_budget(self.retry_budget)
        _require(
            _is_int(self.max_deliveries) and self.max_deliveries >= 1,
            "max_deliveries must be at least 1",
        )

    def __repr__(self) -> str:
        return _repr_hiding_passwords(self)

    def create_broker(self, queue_suffix: str = "") -> BaseBroker:
        """Create the broker this configuration describes.

        Raises:
            BrokerError: If the URL scheme is unsupported or its driver is missing.
        """
        from flowrra.brokers.factory import get_broker

        broker = get_broker(
            self.url,
            max_connections=self.max_connections,
            socket_timeout=self.socket_timeout,
            retry_on_timeout=self.retry_on_timeout,
            queue_key=(self.queue_key or DEFAULT_QUEUE_KEY) + queue_suffix,
            retry_budget=self.retry_budget,
            max_deliveries=self.max_deliveries,
        )
        assert broker is not None
        return broker


@dataclass
class BackendConfig:
    """Where task records and results are stored.

    Usage::

        BackendConfig(url="redis://localhost:6379/1", ttl=86_400)
        BackendConfig(url="memory://?max_results=10000")

    ``retry_budget`` (flowrra 0.2) is how many seconds each Redis call rides out a lost
    connection before it raises ``BackendError``.
    """

    url: str
    ttl: int | None = None
    max_connections: int = 50
    socket_timeout: float = 5.0
    retry_on_timeout: bool = True
    retry_budget: float = 10.0

    def __post_init__(self) -> None:
        """Validate backend configuration."""
        _require(isinstance(self.url, str) and bool(self.url), "Backend URL is required")
        _check_redis_database(self.url)
        _require(
            self.ttl is None or (_is_int(self.ttl) and self.ttl >= 1),
            "ttl must be at least 1 second",
        )
        _check_connection(self.max_connections, self.socket_timeout)
        _check_retry_budget(self.retry_budget)

    def __repr__(self) -> str:
        return _repr_hiding_passwords(self)

    def create_backend(self) -> BaseResultBackend:
        """Create the result backend this configuration describes.

        Raises:
            BackendError: If the URL scheme is unsupported or its driver is missing.
        """
        from flowrra.backends.factory import get_backend

        return get_backend(
            self.url,
            ttl=self.ttl,
            max_connections=self.max_connections,
            socket_timeout=self.socket_timeout,
            retry_on_timeout=self.retry_on_timeout,
            retry_budget=self.retry_budget,
        )


@dataclass
class ExecutorConfig:
    """How many workers run tasks, how many may wait, and the retry defaults.

    Fields after ``retry_delay`` are additions of flowrra 0.2:

    - ``start_method``: how CPU worker processes start, ``"forkserver"`` (Linux
      default), ``"spawn"`` (default elsewhere) or ``"fork"``.
    - ``max_retry_delay``: the cap on the exponential retry backoff, in seconds.
    - ``retry_jitter``: spread each retry delay randomly over [delay/2, delay].
    - ``output_limit``: characters of each task's output (what it prints and logs) kept
      with its record, the most recent ones; 64 KiB by default, 0 to capture nothing
      (tasks then print as any code does).

    ``max_retries`` and ``retry_delay`` are the defaults for ``@app.task()`` when it does
    not name its own.
    """

    io_workers: int = 4
    cpu_workers: int = 2
    max_queue_size: int = 1000
    max_retries: int = 3
    retry_delay: float = 1.0
    start_method: str | None = None
    max_retry_delay: float = 300.0
    retry_jitter: bool = False
    output_limit: int = 65536

    def __post_init__(self) -> None:
        """Validate executor configuration."""
        _require(_is_int(self.io_workers) and self.io_workers >= 1, "io_workers must be at least 1")
        _require(
            _is_int(self.cpu_workers) and self.cpu_workers >= 1, "cpu_workers must be at least 1"
        )
        _require(
            _is_int(self.max_queue_size) and self.max_queue_size >= 1,
            "max_queue_size must be at least 1",
        )
        _require(
            _is_int(self.max_retries) and self.max_retries >= 0, "max_retries must be non-negative"
        )
        _require(
            _is_number(self.retry_delay) and self.retry_delay >= 0,
            "retry_delay must be non-negative",
        )
        _require(
            _is_number(self.max_retry_delay) and self.max_retry_delay >= 0,
            "max_retry_delay must be non-negative",
        )
        _require(
            _is_int(self.output_limit) and self.output_limit >= 0,
            "output_limit must be a whole number of characters >= 0 (0: capture no output)",
        )
        _require(
            self.start_method is None or self.start_method in START_METHODS,
            f"start_method must be one of {', '.join(START_METHODS)} (or None for the "
            f"platform default), got {self.start_method!r}",
        )

    @property
    def resolved_start_method(self) -> str:
        """The start method in force: the configured one or the platform default."""
        return self.start_method or default_start_method()


@dataclass
class SchedulerConfig:
    """Persistent scheduling: where schedules live and how often other processes'
    changes are looked for.

    ``database_url`` is ``sqlite:///path.db`` (default ``.flowrra_schedule.db``),
    ``postgresql://user@host/db`` or ``mysql://user@host/db``.
    """

    database_url: str | None = None
    check_interval: float = 60.0
    enabled: bool = False

    def __post_init__(self) -> None:
        """Validate scheduler configuration."""
        _require(
            _is_number(self.check_interval) and 0 < self.check_interval < math.inf,
            f"check_interval must be positive (a finite number of seconds), got "
            f"{self.check_interval!r}",
        )

    def __repr__(self) -> str:
        return _repr_hiding_passwords(self)

    def create_backend(self) -> Any:
        """Create the scheduler backend for ``database_url``."""
        from flowrra.scheduler.backends import get_scheduler_backend  # type: ignore[import-not-found]

        return get_scheduler_backend(self.database_url)


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _to_bool(raw: str) -> bool:
    """1/0, true/false, yes/no, on/off in any case; anything else is a ValueError (0.1.8
    read every other word, a typo such as 'ture' included, as False)."""
    word = raw.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(raw)


def _to_int(raw: str) -> int:
    return int(raw.strip())


def _to_float(raw: str) -> float:
    return float(raw.strip())


def _to_str(raw: str) -> str:
    return raw


_TYPE_WORDS: dict[Callable[[str], Any], str] = {
    _to_int: "a whole number",
    _to_float: "a number",
    _to_bool: "one of 1/0, true/false, yes/no, on/off",
    _to_str: "a string",
}

# section -> (field, parser); the variable is PREFIX + SECTION + "_" + FIELD upper-cased
_ENV_FIELDS: dict[str, list[tuple[str, Callable[[str], Any]]]] = {
    "BROKER": [
        ("url", _to_str),
        ("max_connections", _to_int),
        ("socket_timeout", _to_float),
        ("retry_on_timeout", _to_bool),
        ("queue_key", _to_str),
        ("retry_budget", _to_float),
        ("max_deliveries", _to_int),
    ],
    "BACKEND": [
        ("url", _to_str),
        ("ttl", _to_int),
        ("max_connections", _to_int),
        ("socket_timeout", _to_float),
        ("retry_on_timeout", _to_bool),
        ("retry_budget", _to_float),
    ],
    "EXECUTOR": [
        ("io_workers", _to_int),
        ("cpu_workers", _to_int),
        ("max_queue_size", _to_int),
        ("max_retries", _to_int),
        ("retry_delay", _to_float),
        ("start_method", _to_str),
        ("max_retry_delay", _to_float),
        ("retry_jitter", _to_bool),
        ("output_limit", _to_int),
    ],
    "SCHEDULER": [
        ("database_url", _to_str),
        ("check_interval", _to_float),
        ("enabled", _to_bool),
    ],
}


def _read_section(prefix: str, section: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, parse in _ENV_FIELDS[section]:
        var = f"{prefix}{section}_{name.upper()}"
        raw = os.environ.get(var)
        if raw is None:
            continue
        try:
            values[name] = parse(raw)
        except ValueError:
            raise ConfigError(
                f"Environment variable {var} must be {_TYPE_WORDS[parse]}, got {raw!r}"
            ) from None
    return values


def _build(cls: type, prefix: str, section: str, values: dict[str, Any]) -> Any:
    try:
        return cls(**values)
    except ConfigError as exc:
        names = ", ".join(f"{prefix}{section}_{k.upper()}" for k in values)
        raise ConfigError(f"{exc} (from environment variables: {names})") from None


def _secret_from_env(prefix: str) -> str | None:
    secret = os.environ.get(f"{prefix}SECRET_KEY")
    if secret is not None and len(secret) < 16:
        raise ConfigError(f"Environment variable {prefix}SECRET_KEY must be at least 16 characters")
    return secret


@dataclass
class Config:
    """Everything an app needs to know, each part optional with a sensible default.

    ``secret_key`` signs every payload that crosses Redis (HMAC-SHA256); it defaults to
    the ``FLOWRRA_SECRET_KEY`` environment variable.

    Usage::

        Config()                                    # in-memory queue and results
        Config(executor=ExecutorConfig(io_workers=16))
        Config(broker=BrokerConfig("redis://localhost:6379/0"),
               backend=BackendConfig("redis://localhost:6379/1"))
        Config.from_env()                           # FLOWRRA_* environment variables
    """

    broker: BrokerConfig | None = None
    backend: BackendConfig | None = None
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    scheduler: SchedulerConfig | None = None
    secret_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        """Ensure executor config exists; check the secret key."""
        if self.executor is None:
            self.executor = ExecutorConfig()
        _require(
            self.secret_key is None or len(self.secret_key) >= 16,
            "secret_key must be at least 16 characters long",
        )

    def create_broker(self, queue_suffix: str = "") -> BaseBroker | None:
        """The configured broker, or None (meaning the in-memory queue)."""
        return self.broker.create_broker(queue_suffix) if self.broker else None

    def create_backend(self) -> BaseResultBackend:
        """The configured result backend, or a new in-memory one."""
        if self.backend is not None:
            return self.backend.create_backend()
        from flowrra.backends.memory import InMemoryBackend

        return InMemoryBackend()

    def create_scheduler_backend(self) -> Any:
        """The scheduler backend when a scheduler is configured and enabled, else None."""
        if self.scheduler is not None and self.scheduler.enabled:
            return self.scheduler.create_backend()
        return None

    @classmethod
    def from_env(cls, prefix: str = "FLOWRRA_") -> Config:
        """Build a Config from environment variables (every one optional).

        ``{prefix}BROKER_URL`` and ``{prefix}BACKEND_URL`` turn on a broker and a
        backend (with ``_MAX_CONNECTIONS``, ``_SOCKET_TIMEOUT``, ``_RETRY_ON_TIMEOUT``,
        ``BROKER_QUEUE_KEY``, ``BACKEND_TTL``); ``{prefix}EXECUTOR_IO_WORKERS``,
        ``_CPU_WORKERS``, ``_MAX_QUEUE_SIZE``, ``_MAX_RETRIES``, ``_RETRY_DELAY``,
        ``_START_METHOD``, ``_MAX_RETRY_DELAY``, ``_RETRY_JITTER``, ``_OUTPUT_LIMIT`` set
        the executors; ``{prefix}SCHEDULER_ENABLED``, ``_DATABASE_URL``, ``_CHECK_INTERVAL`` the
        scheduler; ``{prefix}SECRET_KEY`` signs what crosses Redis. A value that does not
        parse raises ConfigError naming the variable.
        """
        broker = _read_section(prefix, "BROKER")
        backend = _read_section(prefix, "BACKEND")
        executor = _read_section(prefix, "EXECUTOR")
        scheduler = _read_section(prefix, "SCHEDULER")
        return cls(
            broker=_build(BrokerConfig, prefix, "BROKER", broker) if "url" in broker else None,
            backend=_build(BackendConfig, prefix, "BACKEND", backend) if "url" in backend else None,
            executor=_build(ExecutorConfig, prefix, "EXECUTOR", executor),
            scheduler=_build(SchedulerConfig, prefix, "SCHEDULER", scheduler)
            if scheduler.get("enabled")
            else None,
            secret_key=_secret_from_env(prefix),
        )
