"""Result backends: where task records live. ``get_backend(url)`` picks one by scheme."""

from flowrra.backends.base import BaseResultBackend
from flowrra.backends.factory import get_backend
from flowrra.backends.memory import InMemoryBackend

__all__ = ["BaseResultBackend", "InMemoryBackend", "RedisBackend", "get_backend"]


def __getattr__(name: str) -> object:
    """``RedisBackend`` (flowrra 0.1.8 imported it from here), loaded when first asked for, so
    importing this package does not need the redis extra."""
    if name == "RedisBackend":
        from flowrra.backends.redis import RedisBackend

        return RedisBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
