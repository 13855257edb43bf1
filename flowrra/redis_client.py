"""Connections to Redis shared by the Redis broker and backend (needs the redis extra).

One place for: building an asyncio client from a URL and the config options, hiding the
password when a URL is shown, and the retry policy for reconnecting.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "LUA_ROWS",
    "Batcher",
    "connect",
    "pack_batch",
    "redacted",
    "split_options",
    "unreachable",
]

logger = logging.getLogger("flowrra.redis")


#: Lua helpers for batched scripts. ``rows(meta, blobs)`` reads what :func:`pack_batch`
#: wrote: ``meta`` is a JSON list of rows in which a ``[length]`` field stands for the next
#: ``length`` bytes of ``blobs``. ``chunked(cmd, key, args)`` runs ``cmd key args...`` in
#: slices that fit Lua's stack, so a batch costs a few commands rather than a few per row.
#: One JSON argument and one bytes argument carry a whole batch: encoding each field as an
#: argument costs redis-py several microseconds, and JSON is encoded and decoded in C.
LUA_ROWS = """
local function rows(meta, blobs)
  local out, pos = cjson.decode(meta), 1
  for _, r in ipairs(out) do
    for j = 1, #r do
      local v = r[j]
      if type(v) == 'table' then
        r[j] = string.sub(blobs, pos, pos + v[1] - 1)
        pos = pos + v[1]
      end
    end
  end
  return out
end
local function chunked(cmd, key, args)
  for i = 1, #args, 4000 do
    redis.call(cmd, key, unpack(args, i, math.min(i + 3999, #args)))
  end
end
"""


def pack_batch(metas: list[list[Any]], blobs: list[bytes]) -> tuple[str, bytes]:
    """The two script arguments for :data:`LUA_ROWS`: ``metas`` as JSON (each blob field
    given as ``[len(blob)]``, in row order) and the blobs joined."""
    return json.dumps(metas, separators=(",", ":")), b"".join(blobs)


def unreachable(what: str, url: str, exc: BaseException) -> str:
    """The message for a server that cannot be reached: the URL (password hidden), the
    cause, and what to do about a certificate that does not verify."""
    text = f"Cannot reach the Redis {what} at {redacted(url)}: {str(exc).rstrip('.')}"
    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
        text += (
            ". The server's TLS certificate is not trusted: add ?ssl_ca_certs=/path/to/ca.pem "
            "(the CA that signed it) to the URL"
        )
    return text


def redacted(url: str) -> str:
    """``url`` with its password replaced by ``***`` (safe for logs and errors)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def split_options(url: str, names: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """Take flowrra's own query options (``names``) out of ``url``; return the rest."""
    parts = urlsplit(url)
    mine: dict[str, str] = {}
    rest = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in names:
            mine[key] = value
        else:
            rest.append((key, value))
    base = url.split("?", 1)[0]  # urlunsplit would turn unix:///path into unix:/path
    return (f"{base}?{urlencode(rest)}" if rest else base), mine


def connect(
    url: str,
    *,
    max_connections: int = 50,
    socket_timeout: float | None = 5.0,
    retry_on_timeout: bool = True,
) -> Any:
    """An asyncio Redis client for ``url`` (``redis://``, ``rediss://`` for TLS,
    ``redis://user:password@host`` for ACL users, ``unix://``) that retries a lost
    connection with exponential backoff."""
    from redis.asyncio import Redis
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from redis.retry import Retry

    errors: list[type[Exception]] = [RedisConnectionError, ConnectionError, OSError]
    if retry_on_timeout:
        errors.append(RedisTimeoutError)
    return Redis.from_url(
        url,
        max_connections=max_connections,
        socket_timeout=socket_timeout,
        socket_connect_timeout=5.0,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=8),
        retry_on_error=errors,
        health_check_interval=30,
    )


class Batcher:
    """Groups concurrent calls into one round trip, in order.

    ``await batcher.add(item)`` returns once a flush containing ``item`` is done. One
    flush runs at a time: what arrives meanwhile goes in the next one, so writes reach
    Redis in the order they were made, an idle system sends at once and a busy one sends
    everything that piled up in one round trip. :meth:`add_nowait` queues without waiting.
    """

    def __init__(self, flush: Any) -> None:
        """``flush`` is an async callable taking the list of items."""
        self._flush = flush
        self._items: list[Any] = []
        self._futures: list[Any] = []
        self._runner: Any = None

    def add_nowait(self, item: Any) -> Any:
        """Queue ``item`` for the next flush; return the future of that flush."""
        return self.add_many_nowait((item,))

    def add_many_nowait(self, items: Iterable[Any]) -> Any:
        """Queue ``items`` for the next flush; return the future of that flush."""
        import asyncio

        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._items.extend(items)
        self._futures.append(future)
        if self._runner is None:
            self._runner = loop.create_task(self._run())
        return future

    async def add(self, item: Any) -> None:
        """Queue ``item`` and wait for the flush that carries it."""
        await self.add_nowait(item)

    async def drain(self) -> None:
        """Wait until everything queued so far is flushed."""
        if self._runner is not None:
            await asyncio_shield(self._runner)

    async def _run(self) -> None:
        try:
            while self._items:
                items, futures = self._items, self._futures
                self._items, self._futures = [], []
                try:
                    await self._flush(items)
                except Exception as exc:
                    logger.error("A batch of %d Redis writes failed: %s", len(items), exc)
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                            future.exception()  # retrieved: a fire-and-forget add may not
                    continue
                for future in futures:
                    if not future.done():
                        future.set_result(None)
        finally:
            self._runner = None


async def asyncio_shield(task: Any) -> None:
    """Await ``task`` without cancelling it if the waiter is cancelled."""
    import asyncio
    import contextlib

    with contextlib.suppress(Exception):
        await asyncio.shield(task)
