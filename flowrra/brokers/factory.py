"""URL -> broker. The driver for a scheme is imported only when that scheme is used."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flowrra.brokers.base import BaseBroker
from flowrra.exceptions import BrokerError

__all__ = ["get_broker"]

_REDIS_SCHEMES = ("redis", "rediss", "unix")


def get_broker(broker: BaseBroker | str | None, **kwargs: Any) -> BaseBroker | None:
    """Return a broker for ``broker``.

    ``None`` means the executor's own in-memory queue (returns None); a
    :class:`BaseBroker` is returned as is; ``memory://`` gives an
    :class:`~flowrra.brokers.memory.InMemoryBroker`. Redis URLs (``redis://``,
    ``rediss://``, ``unix://``) need the ``redis`` extra and the Redis broker.
    """
    if broker is None or isinstance(broker, BaseBroker):
        return broker
    if not isinstance(broker, str):
        raise BrokerError(
            "Broker must be a connection string, BaseBroker instance, or None. "
            f"Got {type(broker).__name__}"
        )
    scheme = urlsplit(broker).scheme.lower()
    if scheme == "memory":
        from flowrra.brokers.memory import InMemoryBroker

        return InMemoryBroker()
    if scheme in _REDIS_SCHEMES:
        try:
            from flowrra.brokers.redis import RedisBroker  # type: ignore[import-not-found]
        except ImportError as exc:
            raise BrokerError(
                f"The Redis broker needs the redis extra:"
                f" pip install -e '.[redis]' in flowrra's clone ({exc})"
            ) from None
        return RedisBroker(broker, **kwargs)
    raise BrokerError(
        f"Unsupported broker URL scheme: '{scheme}'. Supported schemes: memory, redis, rediss, unix"
    )
