"""Brokers: where tasks wait for a worker. ``get_broker(url)`` picks one by scheme."""

from flowrra.brokers.base import BaseBroker
from flowrra.brokers.factory import get_broker
from flowrra.brokers.memory import InMemoryBroker

__all__ = ["BaseBroker", "InMemoryBroker", "RedisBroker", "get_broker"]


def __getattr__(name: str) -> object:
    """``RedisBroker`` (flowrra 0.1.8 imported it from here), loaded when first asked for, so
    importing this package does not need the redis extra."""
    if name == "RedisBroker":
        from flowrra.brokers.redis import RedisBroker

        return RedisBroker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
