"""Scheduler backends: where schedules live. :func:`get_scheduler_backend` turns a URL into
one, importing the driver for its scheme only then.

- SQLite: None (the file ``.flowrra_schedule.db``), ``sqlite:///relative.db``,
  ``sqlite:////absolute/path.db``, ``sqlite:///:memory:`` or a bare file path;
- PostgreSQL: ``postgresql://user:pass@host:5432/db`` (also ``postgres://``);
- MySQL / MariaDB: ``mysql://user:pass@host:3306/db`` (also ``mariadb://``).

Every URL takes ``?table_prefix=`` (default ``flowrra_``); see each backend for the rest.
A driver suffix (``postgresql+asyncpg://``, ``mysql+aiomysql://``) is accepted and ignored.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flowrra.exceptions import ConfigError
from flowrra.scheduler.backends.base import (
    BaseSchedulerBackend,
    SQLSchedulerBackend,
    redact_url,
)
from flowrra.scheduler.backends.sqlite import SQLiteSchedulerBackend

__all__ = [
    "BaseSchedulerBackend",
    "MySQLSchedulerBackend",
    "PostgreSQLSchedulerBackend",
    "SQLSchedulerBackend",
    "SQLiteSchedulerBackend",
    "get_scheduler_backend",
    "redact_url",
]

_SCHEMES = "sqlite, postgresql (postgres), mysql (mariadb)"


def get_scheduler_backend(
    url: str | BaseSchedulerBackend | None = None, **options: Any
) -> BaseSchedulerBackend:
    """The scheduler backend for ``url``.

    Args:
        url: None (SQLite at ``.flowrra_schedule.db``), a database URL (see the module
            docstring), a bare file path (SQLite), or a backend instance (returned as is).
        **options: Backend options, overriding the URL's query options.

    Raises:
        ConfigError: An unknown scheme or option (a ``ValueError``).
        ImportError: The scheme's driver is not installed (the message names the extra).
    """
    if isinstance(url, BaseSchedulerBackend):
        return url
    if url is None:
        return SQLiteSchedulerBackend(**options)
    if not isinstance(url, str):
        raise ConfigError(
            "A scheduler backend is a database URL, a BaseSchedulerBackend or None, got "
            f"{type(url).__name__}"
        )
    scheme = urlsplit(url).scheme.lower().split("+", 1)[0] if "://" in url else ""
    if scheme in ("", "sqlite"):
        if not scheme:
            return SQLiteSchedulerBackend(url or ".flowrra_schedule.db", **options)
        return SQLiteSchedulerBackend.from_url(url, **options)
    if scheme in ("postgresql", "postgres"):
        from flowrra.scheduler.backends.postgresql import PostgreSQLSchedulerBackend

        return PostgreSQLSchedulerBackend(url, **options)
    if scheme in ("mysql", "mariadb"):
        from flowrra.scheduler.backends.mysql import MySQLSchedulerBackend

        return MySQLSchedulerBackend(url, **options)
    raise ConfigError(
        f"Unsupported scheduler backend URL scheme: '{scheme}' in {redact_url(url)!r}. "
        f"Supported schemes: {_SCHEMES}"
    )


def __getattr__(name: str) -> Any:
    """Import the PostgreSQL and MySQL backends (and their drivers) only when named."""
    if name == "PostgreSQLSchedulerBackend":
        from flowrra.scheduler.backends.postgresql import PostgreSQLSchedulerBackend

        return PostgreSQLSchedulerBackend
    if name == "MySQLSchedulerBackend":
        from flowrra.scheduler.backends.mysql import MySQLSchedulerBackend

        return MySQLSchedulerBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
