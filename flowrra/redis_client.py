"""Connections to Redis shared by the Redis broker and backend (needs the redis extra).

One place for: building an asyncio client from a URL and the config options, hiding the
password when a URL is shown, the retry policy for reconnecting, the batching of
concurrent writes, and the arguments of batched scripts. How the hot paths read the socket
(script lines, subscriptions) is :mod:`flowrra.redis_wire`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "DEFAULT_RETRY_BUDGET",
    "LUA_ROWS",
    "Batcher",
    "connect",
    "database_of",
    "dump_json",
    "pack_batch",
    "redacted",
    "rename_wrong_types",
    "retrying",
    "same_server",
    "split_options",
    "transient_errors",
    "unreachable",
]

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - the redis extra installs it
    _orjson = None

#: Seconds a Redis call keeps retrying a lost connection before it gives up.
DEFAULT_RETRY_BUDGET = 10.0

logger = logging.getLogger("flowrra.redis")

T = TypeVar("T")


#: Lua helpers for batched scripts. ``rows(meta, blobs)`` reads what :func:`pack_batch`
#: wrote: ``meta`` is a JSON list of rows in which a ``[length]`` field stands for the next
#: ``length`` bytes of ``blobs``; ``fill(list, blobs, pos)`` does the same for one list of
#: rows of a larger structure, from byte ``pos`` on, and returns where the next list
#: starts. ``chunked(cmd, key, args)`` runs ``cmd key args...`` in slices that fit Lua's
#: stack, so a batch costs a few commands rather than a few per row. One JSON argument and
#: one bytes argument carry a whole batch: encoding each field as an argument costs
#: redis-py several microseconds, and JSON is encoded and decoded in C.
LUA_ROWS = """
local function fill(list, blobs, pos)
  for _, r in ipairs(list) do
    for j = 1, #r do
      local v = r[j]
      if type(v) == 'table' then
        r[j] = string.sub(blobs, pos, pos + v[1] - 1)
        pos = pos + v[1]
      end
    end
  end
  return pos
end
local function rows(meta, blobs)
  local out = cjson.decode(meta)
  fill(out, blobs, 1)
  return out
end
local function chunked(cmd, key, args)
  for i = 1, #args, 4000 do
    redis.call(cmd, key, unpack(args, i, math.min(i + 3999, #args)))
  end
end
"""


def pack_batch(metas: list[list[Any]], blobs: list[bytes]) -> tuple[bytes | str, bytes]:
    """The two script arguments for :data:`LUA_ROWS`: ``metas`` as JSON (each blob field
    given as ``[len(blob)]``, in row order) and the blobs joined."""
    return dump_json(metas), b"".join(blobs)


def dump_json(value: Any) -> bytes | str:
    """``value`` as compact JSON for a script argument: with orjson (installed with the
    redis extra; a batch's rows in 1 us instead of the json module's 16 us, which builds
    an encoder per call), else with the json module. Values orjson refuses (an int wider
    than 64 bits) go through the json module."""
    if _orjson is not None:
        try:
            return _orjson.dumps(value)
        except TypeError:
            pass
    return json.dumps(value, separators=(",", ":"))


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
    """``url`` with its password replaced by ``***``, whether it is in the user part
    (``redis://user:pw@host``) or a ``password=`` query parameter (safe for logs and
    errors)."""
    base, sep, query = url.partition("?")
    parts = urlsplit(base)
    if parts.password is not None:
        user = parts.username or ""
        port = f":{parts.port}" if parts.port else ""
        base = urlunsplit(parts._replace(netloc=f"{user}:***@{parts.hostname or ''}{port}"))
    if any(key.lower() == "password" for key, _ in parse_qsl(query, keep_blank_values=True)):
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, "***" if k.lower() == "password" else v) for k, v in pairs], safe="*"
        )
    return f"{base}{sep}{query}"


def same_server(url_a: str, url_b: str) -> bool:
    """True when two Redis URLs reach one server as one user (the database may differ),
    so one script can write to both."""
    from redis.connection import parse_url

    def where(url: str) -> dict[str, Any]:
        found = dict(parse_url(split_options(url, ("key_prefix",))[0]))
        found.pop("db", None)
        cls = found.pop("connection_class", None)
        found["kind"] = getattr(cls, "__name__", "tcp")
        found.setdefault("port", 6379)
        if found.get("host") == "localhost":
            found["host"] = "127.0.0.1"
        return found

    try:
        return where(url_a) == where(url_b)
    except Exception:
        return False


def database_of(url: str) -> int:
    """The database number a Redis URL selects (0 when it names none)."""
    from redis.connection import parse_url

    return int(parse_url(split_options(url, ("key_prefix",))[0]).get("db") or 0)


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
    ``redis://user:password@host`` for ACL users, ``unix://``).

    Its pool holds at most ``max_connections``; a caller that finds them all busy waits
    for one to be free instead of failing. A connection found dead is replaced once at
    once; longer outages are ridden out by :func:`retrying`.
    """
    from redis.asyncio import BlockingConnectionPool, Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    errors: list[type[Exception]] = [RedisConnectionError, ConnectionError, OSError]
    if retry_on_timeout:
        errors.append(RedisTimeoutError)
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=None,
        socket_timeout=socket_timeout,
        socket_connect_timeout=min(5.0, socket_timeout or 5.0),
        retry=Retry(NoBackoff(), retries=1),
        retry_on_error=errors,
        health_check_interval=30,
        **pool_options(),
    )
    return Redis.from_pool(pool)  # closing the client closes its connections


def pool_options() -> dict[str, Any]:
    """Options every flowrra connection pool gets: redis-py 7+ maintenance notifications
    off. With them on ("auto", its default) the pool hands out an idle connection the
    server has closed without checking it, and sends ``CLIENT MAINT_NOTIFICATIONS`` on
    every new connection (an error reply on Redis before 8)."""
    try:
        from redis.maint_notifications import MaintNotificationsConfig
    except ImportError:  # redis-py before 7: no such thing
        return {}
    return {"maint_notifications_config": MaintNotificationsConfig(enabled=False)}


@functools.cache
def transient_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "Redis is away for now": calls retry them within their budget."""
    from redis.exceptions import BusyLoadingError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (RedisConnectionError, RedisTimeoutError, BusyLoadingError, OSError)


def _glob_escaped(text: str) -> str:
    """``text`` as a literal in a Redis SCAN pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


async def rename_wrong_types(
    client: Any, expected: dict[str, str], families: dict[str, str] | None = None
) -> bool:
    """Rename each key that holds another type of value than it should to
    ``{key}:corrupt``, with a log line; True if any was.

    ``expected`` maps keys to their types (``"zset"``, ``"hash"``...); ``families``
    maps key stems to the type of every key ``{stem}:*`` (a key per task name, say),
    found by a scan: run this only after Redis answered WRONGTYPE. Keys already set
    aside (ending in ``:corrupt``) are left as they are.
    """
    expected = dict(expected)
    for stem, kind in (families or {}).items():
        async for key in client.scan_iter(match=f"{_glob_escaped(stem)}:*", count=1000):
            name = key.decode(errors="replace") if isinstance(key, bytes) else str(key)
            if not name.endswith(":corrupt"):
                expected.setdefault(name, kind)
    keys = list(expected)
    found = await client.eval(
        "local t = {} for i, k in ipairs(KEYS) do t[i] = redis.call('TYPE', k).ok end return t",
        len(keys),
        *keys,
    )
    renamed = False
    for key, kind, want in zip(keys, found, expected.values(), strict=True):
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        if kind not in ("none", want):
            logger.error(
                "Redis key %s holds a %s, not a %s: renamed to %s:corrupt", key, kind, want, key
            )
            await client.rename(key, f"{key}:corrupt")
            renamed = True
    return renamed


async def retrying(
    call: Callable[[], Awaitable[T]],
    budget: float,
    fail: Callable[[BaseException], Exception],
) -> T:
    """Await ``call()``; while Redis cannot be reached, call again with exponential
    backoff (50 ms doubling to 2 s) for up to ``budget`` seconds, then raise
    ``fail(error)``. Any other error is raised as ``fail(error)`` at once, except
    flowrra's own errors and cancellation, which pass through."""
    try:
        return await call()
    except Exception as exc:
        return await _retry_after(exc, call, budget, fail)


async def _retry_after(
    first: Exception,
    call: Callable[[], Awaitable[T]],
    budget: float,
    fail: Callable[[BaseException], Exception],
) -> T:
    from flowrra.exceptions import FlowrraError

    transient = transient_errors()
    deadline = time.monotonic() + budget
    delay = 0.05
    error: Exception = first
    while True:
        if isinstance(error, FlowrraError):
            raise error
        if not isinstance(error, transient):
            raise fail(error) from error
        left = deadline - time.monotonic()
        if left <= 0:
            raise fail(error) from error
        logger.debug("Redis unavailable (%s); retrying in %.2fs", error, delay)
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, 2.0)
        try:
            return await call()
        except Exception as exc:
            error = exc


#: ``fast(items, landed)`` of a :class:`Batcher`: send ``items`` (what ``prepare`` made of
#: them, if the batcher has one) at once, without a task, and call ``landed(outcome,
#: None)`` or ``landed(None, error)`` when the reply arrives; False if it cannot (not
#: connected yet: the batch then goes the awaited way).
FastFlush = Callable[[Any, Callable[[Any, BaseException | None], None]], bool]
#: ``recover(items, error)`` of a :class:`Batcher`: flush ``items`` again, the awaited
#: way, after their fast flush failed with ``error``.
Recover = Callable[[list[Any], BaseException], Awaitable[Any]]


class Batcher:
    """Groups concurrent calls into one round trip, in order.

    ``await batcher.add(item)`` returns once a flush containing ``item`` is done (the
    futures of a flush carry what ``flush`` returned). A flush goes out once the one
    before it is done (the one exception, batches that need no order, is described
    below): what arrives meanwhile goes in the next one, so writes reach Redis in the
    order they were made, an idle system sends at once and a busy one sends everything
    that piled up in one round trip (up to ``limit`` items; the rest go in the next).
    :meth:`add_nowait` queues without waiting.

    With ``fast`` (and ``recover``), a flush is sent from a plain callback (at the end of
    the loop turn in which the batcher was found idle, or after the previous flush's
    callers had their turn) and finished from the callback of its reply: no task, no
    chain of coroutines, one turn of the loop fewer on the way back. A batch whose fast
    flush cannot start or fails goes to a task that awaits ``flush`` (``recover`` for a
    failed one, which rides out outages), and batches after it follow it there, in order.

    With ``prepare`` too, ``fast`` is given ``prepare(items)``, and a full batch (``limit``
    items) queued behind a fast flush in flight is prepared while that flush is out:
    when its reply lands the next one goes out at once, instead of after the time it
    takes to prepare (a bulk submit's 4,000-task batch: 10-15 ms during which Redis had
    nothing to do). The preparation is only a head start: a batch taken otherwise than
    it was prepared (a flush that failed, the awaited way) is prepared again. A full
    batch queued while no flush is out goes at once too, not at the end of the loop
    turn: in a gather of 10,000 submits, whose first steps all run in one turn, Redis
    stores the first 4,000 while the turn makes the rest.

    One fast flush is out at a time, so a flush that fails is written again before any
    batch behind it, except for a batch prepared ahead whose items ``pipelined`` says
    need no order among batches (new tasks: each is written whole by its batch, and
    nothing else can be written of a task before its submit returned). Such a batch
    goes out while one other flush is out, so Redis has the next batch of a burst as
    soon as it finishes one. If a flush fails, a flush sent after it that fails too
    follows it the awaited way, in order.
    """

    def __init__(
        self,
        flush: Callable[[list[Any]], Awaitable[Any]],
        limit: int = 0,
        fast: FastFlush | None = None,
        recover: Recover | None = None,
        prepare: Callable[[list[Any]], Any] | None = None,
        pipelined: Callable[[list[Any]], bool] | None = None,
    ) -> None:
        """``flush`` is an async callable taking the list of items; ``limit`` caps the
        items of one flush (0: no cap; a group added at once is never split); ``fast``,
        ``recover``, ``prepare`` and ``pipelined``: see the class docstring (``fast``
        and ``recover`` both or neither; ``pipelined`` only with ``prepare``)."""
        self._flush = flush
        self._limit = limit
        self._fast = fast if recover is not None else None
        self._recover = recover
        self._prepare = prepare if self._fast is not None else None
        self._pipelined = pipelined if self._prepare is not None else None
        # the next batch, prepared while a flush is out: (its first future, its number
        # of groups, what prepare made of it, whether it may go while another is out)
        self._ahead: tuple[asyncio.Future[Any], int, Any, bool] | None = None
        self._queued = 0  # items in _groups
        # the groups queued and, beside them, their futures: deques, as 10,000 concurrent
        # submits are 10,000 groups, and a list's pop(0) moved the rest each time (a tenth
        # of the client's instructions in benchmark (e)); two deques, not one of pairs, as
        # each object a waiting submit holds costs the garbage collector
        self._groups: collections.deque[Sequence[Any]] = collections.deque()
        self._futures: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._runner: asyncio.Task[None] | None = None
        self._sending = False  # a fast flush is in flight, or about to be sent
        self._inflight = 0  # fast flushes out (their replies have not landed yet)
        self._idle: list[asyncio.Future[None]] = []  # drain() calls waiting

    def add_nowait(self, item: Any) -> asyncio.Future[Any]:
        """Queue ``item`` for the next flush; return the future of that flush."""
        return self.add_many_nowait((item,))

    def add_many_nowait(self, items: Iterable[Any]) -> asyncio.Future[Any]:
        """Queue ``items`` for the next flush; return the future of that flush. A list or
        a tuple is kept as it is, not copied: it must not change afterwards."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        group = items if type(items) is tuple or type(items) is list else list(items)
        self._groups.append(group)
        self._futures.append(future)
        self._queued += len(group)
        if self._runner is None and not self._sending:
            if self._fast is not None:  # sent once this turn's callers added theirs
                self._sending = True
                loop.call_soon(self._send_fast, loop)
            else:
                self._runner = loop.create_task(self._run())
        elif self._sending and self._full():
            if not self._inflight:  # a whole batch waits for the end of this turn: send it
                self._send_fast(loop)  # now, and Redis works while the turn goes on
            else:  # while one is out, only a batch that needs no order may go
                if self._ahead is None:
                    self._prepare_ahead()
                self._send_fast(loop, 2)
        return future

    async def add(self, item: Any) -> None:
        """Queue ``item`` and wait for the flush that carries it."""
        await self.add_nowait(item)

    @property
    def pending(self) -> int:
        """Groups queued and not yet flushed."""
        return len(self._futures)

    async def drain(self) -> None:
        """Wait until everything queued so far is flushed."""
        if self._runner is None and not self._sending:
            return
        idle: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._idle.append(idle)
        with contextlib.suppress(Exception):
            await asyncio.shield(idle)

    def _take(self, count: int = 0) -> tuple[list[Any], list[asyncio.Future[Any]]]:
        """The next batch: ``count`` groups (a batch prepared ahead), else as many as
        ``limit`` allows."""
        items: list[Any] = []
        futures: list[asyncio.Future[Any]] = []
        while self._groups and (
            len(futures) < count
            if count
            else not (self._limit and items and len(items) >= self._limit)
        ):
            items.extend(self._groups.popleft())
            futures.append(self._futures.popleft())
        self._queued -= len(items)
        self._ahead = None  # used (see _send_fast), or of groups taken otherwise
        return items, futures

    def _full(self) -> bool:
        """A whole batch waits (a batcher with ``prepare`` and a ``limit`` only)."""
        return self._prepare is not None and 0 < self._limit <= self._queued

    def _sizeable(self) -> bool:
        """At least a quarter of a batch waits (a burst): worth preparing, or sending,
        without waiting for the callers of the flush before it to add theirs."""
        return self._prepare is not None and 0 < self._limit <= self._queued * 4

    def _prepare_ahead(self) -> None:
        """Prepare the batch :meth:`_take` would take next (see the class docstring)."""
        assert self._prepare is not None
        items: list[Any] = []
        count = 0
        for group in self._groups:
            if items and len(items) >= self._limit:
                break
            items.extend(group)
            count += 1
        try:
            prepared = self._prepare(items)
        except Exception:  # raised again when the batch is sent, for its callers to see
            return
        free = self._pipelined is not None and self._pipelined(items)
        self._ahead = (self._futures[0], count, prepared, free)

    def _next_batch(self) -> tuple[list[Any], list[asyncio.Future[Any]], Any] | None:
        """Take the next batch to send: its items, their futures and the batch prepared
        ahead for it (None: not prepared). None, and nothing taken, if a flush is out
        and the next batch may not go before its reply (see the class docstring)."""
        ahead = self._ahead
        if ahead is not None and ahead[0] is not self._futures[0]:
            ahead = None  # prepared for groups taken otherwise since
        if self._inflight and (ahead is None or not ahead[3]):
            return None
        if ahead is not None:  # sent as it was prepared
            return *self._take(ahead[1]), ahead
        return *self._take(), None

    def _send_fast(self, loop: asyncio.AbstractEventLoop, most: int = 1) -> None:
        """Send the queued groups now (``_sending`` is set); if the fast flush cannot,
        hand them to a task. With ``most`` flushes out, wait: the reply of the last
        calls this again; once a task took over (``_sending`` cleared), leave it to it.
        With one out, only a batch prepared ahead that needs no order goes (see
        :meth:`_next_batch`).
        """
        if self._inflight >= most or not self._sending:
            return
        if not self._groups:
            if not self._inflight:
                self._sending = False
                self._settled()
            return
        assert self._fast is not None  # only a batcher with a fast flush sends this way
        batch = self._next_batch()
        if batch is None:
            return
        items, futures, ahead = batch

        def landed(outcome: Any, error: BaseException | None) -> None:
            self._landed(items, futures, outcome, error)

        try:
            if self._prepare is None:
                sent = self._fast(items, landed)
            elif ahead is not None:
                sent = self._fast(ahead[2], landed)
            else:
                sent = self._fast(self._prepare(items), landed)
        except Exception as exc:  # made nothing to send: these writes fail, later ones go on
            self._fail(futures, exc, len(items))
            loop.call_soon(self._send_fast, loop)
            return
        if not sent:
            if self._inflight:  # the line closed under the flush out: it fails, and
                self._requeue(items, futures)  # these follow it the awaited way
                return
            self._sending = False
            self._runner = loop.create_task(self._run((items, futures)))
            return
        self._inflight += 1
        if self._sizeable():
            self._prepare_ahead()

    def _landed(
        self,
        items: list[Any],
        futures: list[asyncio.Future[Any]],
        outcome: Any,
        error: BaseException | None,
    ) -> None:
        """The reply of a fast flush (called from the socket's callback)."""
        loop = asyncio.get_running_loop()
        self._inflight -= 1
        if error is not None:  # the awaited way rides out what failed here
            if self._runner is not None:  # writing a flush sent before this one, which
                self._requeue(items, futures)  # failed too: these go next
                return
            self._sending = False
            self._runner = loop.create_task(self._run((items, futures), error))
            return
        for future in futures:
            if not future.done():
                future.set_result(outcome)
        if self._inflight:  # the reply of the flush still out sends the next one, but
            if self._ahead is None and self._sizeable():  # a batch that needs no order
                self._prepare_ahead()  # may go now
            self._send_fast(loop, 2)
        elif self._ahead is not None or self._sizeable():
            # a batch of some size waits already (a burst of submits): what the callers
            # this flush woke may add to it matters little, and Redis would wait for them
            self._send_fast(loop)
        else:  # as in _run: the callers this flush woke add to the next one first
            loop.call_soon(self._send_fast, loop)

    def _requeue(self, items: list[Any], futures: list[asyncio.Future[Any]]) -> None:
        """Queue the items of a flush that failed again, first: the task writing the
        flush before it writes them next, the awaited way."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def settle(done: asyncio.Future[Any]) -> None:
            error = done.exception()
            for caller in futures:
                if caller.done():
                    continue
                if error is not None:
                    caller.set_exception(error)
                    caller.exception()  # retrieved: a fire-and-forget add may not
                else:
                    caller.set_result(done.result())

        future.add_done_callback(settle)
        self._groups.appendleft(items)
        self._futures.appendleft(future)
        self._queued += len(items)

    def _fail(self, futures: list[asyncio.Future[Any]], exc: Exception, count: int) -> None:
        logger.error("A batch of %d Redis writes failed: %s", count, exc)
        for future in futures:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: a fire-and-forget add may not

    def _settled(self) -> None:
        """Wake :meth:`drain` calls once nothing is queued or in flight."""
        if self._runner is None and not self._sending and not self._groups:
            idle, self._idle = self._idle, []
            for future in idle:
                if not future.done():
                    future.set_result(None)

    async def _run(
        self,
        first: tuple[list[Any], list[asyncio.Future[Any]]] | None = None,
        error: BaseException | None = None,
    ) -> None:
        try:
            while first is not None or self._groups:
                items, futures = first if first is not None else self._take()
                first = None
                try:
                    if error is not None and self._recover is not None:
                        failed, error = error, None
                        outcome = await self._recover(items, failed)
                    else:
                        outcome = await self._flush(items)
                except Exception as exc:
                    self._fail(futures, exc, len(items))
                    continue
                for future in futures:
                    if not future.done():
                        future.set_result(outcome)
                # let the callers this flush woke add to the next one before it is taken:
                # a task's next submit then goes out at once, and the write of the task
                # this process runs meanwhile rides with the submit after it (measured on
                # the one-submit loop: 1,591 -> 1,740 tasks/s, one call per task either way)
                await asyncio.sleep(0)
                if self._fast is not None:
                    break  # the next batch goes the fast way again, if it can
        finally:
            self._runner = None
            if self._fast is not None and self._groups and not self._sending:
                self._sending = True
                self._send_fast(asyncio.get_running_loop())
            self._settled()
