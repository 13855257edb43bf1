"""URL -> result backend. The driver for a scheme is imported only when it is used."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from flowrra.backends.base import BaseResultBackend
from flowrra.exceptions import BackendError, ConfigError

__all__ = ["get_backend"]

_REDIS_SCHEMES = ("redis", "rediss", "unix")


def _memory_backend(url: str) -> BaseResultBackend:
    from flowrra.backends.memory import DEFAULT_MAX_RESULTS, InMemoryBackend

    query = parse_qs(urlsplit(url).query)
    unknown = set(query) - {"max_results"}
    if unknown:
        raise ConfigError(
            f"Unknown option(s) {', '.join(sorted(unknown))} in {url!r}; memory:// takes "
            "max_results"
        )
    raw = query.get("max_results", [str(DEFAULT_MAX_RESULTS)])[-1]
    try:
        max_results = int(raw)
    except ValueError:
        raise ConfigError(f"max_results in {url!r} must be a whole number, got {raw!r}") from None
    return InMemoryBackend(max_results=max_results)


def get_backend(backend: BaseResultBackend | str | None, **kwargs: Any) -> BaseResultBackend:
    """Return a result backend for ``backend``.

    ``None`` gives a new :class:`~flowrra.backends.memory.InMemoryBackend`; a
    :class:`BaseResultBackend` is returned as is; ``memory://?max_results=N`` an
    in-memory one with that bound; Redis URLs (``redis://``, ``rediss://``,
    ``unix://``) need the ``redis`` extra.
    """
    if backend is None:
        from flowrra.backends.memory import InMemoryBackend

        return InMemoryBackend()
    if isinstance(backend, BaseResultBackend):
        return backend
    if not isinstance(backend, str):
        raise BackendError(
            "Backend must be a connection string, BaseResultBackend instance, or None. "
            f"Got {type(backend).__name__}"
        )
    scheme = urlsplit(backend).scheme.lower()
    if scheme == "memory":
        return _memory_backend(backend)
    if scheme in _REDIS_SCHEMES:
        try:
            from flowrra.backends.redis import RedisBackend  # type: ignore[import-not-found]
        except ImportError as exc:
            raise BackendError(
                f"The Redis backend needs the redis extra:"
                f" pip install -e '.[redis]' in flowrra's clone ({exc})"
            ) from None
        return RedisBackend(backend, **kwargs)
    raise BackendError(
        f"Unsupported backend URL scheme: '{scheme}'. Supported schemes: memory, redis, "
        "rediss, unix"
    )
