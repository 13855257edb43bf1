"""How flowrra reads Redis's socket on its hot paths (needs the redis extra).

redis-py opens each connection (URL, TLS, ACL user, unix socket, ``SELECT``); then a
:class:`ScriptLine` (one Lua script, one caller at a time: a batch writer, a worker's
takes) or a subscription (:func:`subscribe`) puts an ``asyncio.Protocol`` of its own on the
connection's transport and parses replies with hiredis. redis-py's per-command path cost
more CPU than the round trip itself (benchmarks/RESULTS.md, "Redis, session 6"). Without
hiredis, or with a connection whose transport cannot be reached, the same calls go through
redis-py's own methods.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

from flowrra.exceptions import ConfigError
from flowrra.redis_client import connect, redacted, transient_errors

__all__ = ["ScriptLine", "busy_poll_window", "pack", "subscribe"]

logger = logging.getLogger("flowrra.redis")


async def subscribe(
    url: str,
    channel: str,
    on_subscribed: Callable[[], None],
    on_message: Callable[[bytes], None],
    on_lost: Callable[[], None] | None = None,
) -> None:
    """Listen to ``channel`` for ever (until cancelled) on a connection of its own:
    ``on_subscribed`` after each (re)subscription, ``on_message`` with each message's
    data; a lost connection is logged, reported to ``on_lost`` and made again with
    backoff (50 ms doubling to 2 s). Messages are read with hiredis on the connection
    redis-py opened, as :class:`ScriptLine` does (redis-py's ``PubSub`` when that cannot
    be done)."""
    delay = 0.05

    def subscribed() -> None:
        nonlocal delay
        delay = 0.05
        on_subscribed()

    client = connect(url, max_connections=2, socket_timeout=None)
    try:
        while True:
            try:
                if not await _listen_with_hiredis(client, channel, subscribed, on_message):
                    await _listen_with_pubsub(client, channel, subscribed, on_message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning(
                    "Lost the subscription to %s at %s (%s); reconnecting in %.2fs",
                    channel, redacted(url), exc, delay,
                )  # fmt: skip
                if on_lost is not None:
                    on_lost()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()


class _Messages(asyncio.Protocol):
    """Reads a subscribed connection's pushes with hiredis: ``subscribe`` confirmations
    and ``message`` data go to the callbacks; ``done`` ends when the connection does."""

    def __init__(
        self,
        reader: Any,
        before: asyncio.BaseProtocol,
        on_subscribed: Callable[[], None],
        on_message: Callable[[bytes], None],
    ) -> None:
        self.reader = reader
        self.before = before
        self.on_subscribed = on_subscribed
        self.on_message = on_message
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (push := self.reader.gets()) is not False:
            if not isinstance(push, list) or len(push) < 3:
                continue
            kind = push[0]
            try:
                if kind == b"message":
                    self.on_message(push[2])
                elif kind == b"subscribe":
                    self.on_subscribed()
            except Exception:  # a callback's bug must not end the subscription
                logger.exception("A Redis subscription callback failed")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(_connection_error("the subscription's connection closed"))
            self.done.exception()
        self.before.connection_lost(exc)


async def _listen_with_hiredis(
    client: Any,
    channel: str,
    on_subscribed: Callable[[], None],
    on_message: Callable[[bytes], None],
) -> bool:
    """Subscribe and read pushes until the connection ends (raises then); False, having
    done nothing, when hiredis or the connection's transport is not at hand."""
    if not ScriptLine.own_reader:
        return False
    connection = await client.connection_pool.get_connection()
    try:
        taken = await _take_over(
            connection, lambda reader, before: _Messages(reader, before, on_subscribed, on_message)
        )
        if taken is None:
            return False
        transport, messages = taken
        transport.write(pack(("SUBSCRIBE", channel)))
        await messages.done
        return True
    finally:
        with contextlib.suppress(Exception):
            await connection.disconnect(nowait=True)
        with contextlib.suppress(Exception):
            await client.connection_pool.release(connection)


async def _listen_with_pubsub(
    client: Any,
    channel: str,
    on_subscribed: Callable[[], None],
    on_message: Callable[[bytes], None],
) -> None:
    """:func:`_listen_with_hiredis` through redis-py's ``PubSub``."""
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(channel)
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            if message["type"] == "subscribe":
                on_subscribed()
            elif message["type"] == "message":
                on_message(message["data"])
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()


class _Replies(asyncio.Protocol):
    """Reads the replies of a :class:`ScriptLine`'s connection with hiredis and hands
    them, in order, to the futures of the requests that wait for them."""

    def __init__(
        self,
        reader: Any,
        before: asyncio.BaseProtocol,
        loop: asyncio.AbstractEventLoop,
        poll_window: float,
    ) -> None:
        self.reader = reader
        self.before = before  # the stream protocol redis-py made, told when the line closes
        # each request: its future (an awaited call) or callback (a call sent without
        # waiting, told its reply or error here), and when it was sent
        self.waiting: collections.deque[tuple[Any, float]] = collections.deque()
        self.lost = False
        self.poll = _BusyPoll(loop, poll_window, self.waiting) if poll_window else None

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        poll = self.poll
        now = poll.loop.time() if poll is not None else 0.0
        while (reply := self.reader.gets()) is not False:
            if not self.waiting:  # a reply nobody asked for: the line is out of step
                self.lost = True  # the next call drops the connection
                return
            target, sent = self.waiting.popleft()
            if poll is not None:
                poll.answered(now - sent)
            _tell(target, reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.fail(_connection_error("the connection was closed"))
        self.before.connection_lost(exc)

    def fail(self, error: Exception) -> None:
        """Fail every waiting request with ``error``."""
        while self.waiting:
            _tell(self.waiting.popleft()[0], error, failed=True)


def _tell(target: Any, reply: Any, failed: bool = False) -> None:
    """Give a request's ``reply`` (an error if ``failed``) to its future or callback."""
    if isinstance(target, asyncio.Future):
        if target.done():
            return
        if failed:
            target.set_exception(reply)
            target.exception()  # retrieved: its caller may be gone
        else:
            target.set_result(reply)
        return
    try:
        target(reply)
    except Exception:  # a callback's bug must not stop the replies after it
        logger.exception("A Redis reply's callback failed")


def _answered(error: Exception) -> bool:
    """True for an error reply (the server answered: the connection is in step)."""
    from redis.exceptions import ResponseError

    return isinstance(error, ResponseError)


def _connection_error(what: str) -> Exception:
    from redis.exceptions import ConnectionError as RedisConnectionError

    return RedisConnectionError(f"Redis script line: {what}")


#: How long (microseconds) a script line keeps the event loop polling for a reply that
#: is due soon, instead of letting it sleep in the kernel (0: never). Read from
#: ``FLOWRRA_REDIS_BUSY_POLL_US`` when a line is made.
BUSY_POLL_US = 500


def busy_poll_window() -> float:
    """The busy-poll window in seconds: ``FLOWRRA_REDIS_BUSY_POLL_US`` (microseconds,
    default :data:`BUSY_POLL_US`), 0 on a machine with one CPU (polling would take the CPU
    a local Redis needs to answer)."""
    raw = os.environ.get("FLOWRRA_REDIS_BUSY_POLL_US")
    micros = BUSY_POLL_US
    if raw is not None:
        try:
            micros = int(raw)
        except ValueError:
            micros = -1
        if not 0 <= micros <= 100_000:
            raise ConfigError(
                f"Environment variable FLOWRRA_REDIS_BUSY_POLL_US must be a whole number of "
                f"microseconds from 0 (no busy polling) to 100000, got {raw!r}"
            )
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return micros / 1e6 if cpus > 1 else 0.0


class _BusyPoll:
    """Keeps the event loop turning (polling its sockets without blocking) for up to
    ``window`` seconds after a request is sent, while replies are due, so that a reply is
    read as soon as it lands instead of after the kernel wakes the sleeping thread.

    On a virtual machine that wake costs about as much as a local Redis takes to answer
    (benchmarks/RESULTS.md, "Redis, session 10": a PING from asyncio, 79-119 us sleeping
    against 47-86 us polling). Polling burns the CPU it waits on, so it is kept for
    replies that come back within the window: each reply scores whether it did, and a
    line whose replies keep coming later (a distant server, long scripts) stops polling
    until they are quick again.
    """

    __slots__ = ("loop", "score", "turning", "until", "waiting", "window")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        window: float,
        waiting: collections.deque[tuple[Any, float]],
    ) -> None:
        """Poll ``loop`` for up to ``window`` seconds while ``waiting`` (the line's
        requests) is not empty."""
        self.loop = loop
        self.window = window
        self.waiting = waiting
        self.score = 0  # +1 per reply within the window, -2 per later one; poll if >= 0
        self.until = 0.0
        self.turning = False

    def sent(self, now: float) -> None:
        """A request was written at ``now``: poll until its reply or the window's end."""
        if self.score < 0:
            return
        self.until = now + self.window
        if not self.turning:
            self.turning = True
            self.loop.call_soon(self._turn)

    def answered(self, elapsed: float) -> None:
        """A reply came ``elapsed`` seconds after its request was sent."""
        if elapsed <= self.window:
            self.score = min(self.score + 1, 8)
        else:
            self.score = max(self.score - 2, -8)

    def _turn(self) -> None:
        if self.waiting and self.loop.time() < self.until:
            self.loop.call_soon(self._turn)
        else:
            self.turning = False


class ScriptLine:
    """One Lua script called over a connection of its own, for a caller that makes one
    call at a time (a :class:`~flowrra.redis_client.Batcher`'s flushes, a worker's takes).

    redis-py's command path (pool checkout and return, retry wrapper, a task per socket
    write for its timeout, stream reads) costs more CPU than the round trip itself. The
    line takes a connection from the client's pool (so it counts toward
    ``max_connections``, and redis-py has done the TLS, AUTH and SELECT of the URL), then
    reads its socket itself with hiredis: measured on the one-submit loop (callgrind,
    client process), 987,000 -> 815,000 instructions per task against the connection's
    own methods, and 690 -> 445 us of CPU per task for those against redis-py's command
    path (benchmarks/RESULTS.md, session 6). Without hiredis, or with a
    redis-py whose connection does not expose its transport, it sends and reads through
    the connection's own methods (the same calls, more CPU).

    Calls are serialized by a lock, so writes reach Redis in the order they are made. A
    reply that takes longer than the client's ``socket_timeout`` fails the call with a
    timeout and drops the connection. A connection found dead is dropped and the call
    made once more at once on a new one (as the pooled path does); other connection
    errors are raised for :func:`retrying` to ride out. Replies are what ``EVALSHA``
    returns, undecoded; an error reply is raised as redis-py raises it.
    """

    #: Read the socket with hiredis when possible (False: script lines use the
    #: connection's own send and read methods, and :func:`subscribe` redis-py's
    #: ``PubSub``; the tests run both ways).
    own_reader = True

    def __init__(self, client: Any, source: str, busy_poll: float | None = None) -> None:
        """``client`` from :func:`connect`; ``source`` the script's Lua text;
        ``busy_poll`` the window of :class:`_BusyPoll` in seconds (0: none; None: from
        :func:`busy_poll_window`)."""
        self._client = client
        self._script = client.register_script(source)  # computes the sha
        self._connection: Any = None
        self._transport: Any = None
        self._replies: _Replies | None = None
        self._lock: asyncio.Lock | None = None
        self._timeout: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._poll_window = busy_poll_window() if busy_poll is None else busy_poll

    async def __call__(self, args: list[Any]) -> Any:
        """Run the script with ``args`` (no keys) and return its reply."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            try:
                return await self._call(args)
            except transient_errors():
                await self._drop()
            return await self._call(args)

    async def open(self) -> None:
        """Open the line's connection now, if it is not (else the first call opens it,
        and calls sent without waiting go the awaited way until then)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._connection is None:
                await self._open()

    async def _call(self, args: list[Any]) -> Any:
        from redis.exceptions import NoScriptError, ResponseError

        connection = self._connection
        if connection is None:
            connection = await self._open()
        try:
            try:
                return await self._run(connection, "EVALSHA", self._script.sha, 0, *args)
            except NoScriptError:  # a restarted or flushed server: load it on this one
                sha = await self._run(connection, "SCRIPT", "LOAD", self._script.script)
                self._script.sha = sha.decode() if isinstance(sha, bytes) else sha
                return await self._run(connection, "EVALSHA", self._script.sha, 0, *args)
        except ResponseError:
            raise  # the reply was read: the connection is in step
        except BaseException:
            await self._drop()  # a reply may be pending (cancelled, timed out, lost)
            raise

    async def _open(self) -> Any:
        connection = await self._client.connection_pool.get_connection()
        self._connection = connection
        self._timeout = connection.socket_timeout
        loop, window = asyncio.get_running_loop(), self._poll_window

        def make(reader: Any, before: asyncio.BaseProtocol) -> _Replies:
            return _Replies(reader, before, loop, window)

        taken = await _take_over(connection, make) if self.own_reader else None
        if taken is not None:
            self._transport, self._replies = taken
        return connection

    async def _run(self, connection: Any, *parts: Any) -> Any:
        replies = self._replies
        if replies is None:  # the connection's own methods
            await connection.send_packed_command(connection.pack_command(*parts))
            return await connection.read_response()
        if replies.lost or self._transport.is_closing():  # killed, server restarted
            raise _connection_error("the connection was closed")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        now = loop.time()
        replies.waiting.append((future, now))
        if self._timer is None and self._timeout:
            self._timer = loop.call_at(now + self._timeout, self._watch)
        self._transport.write(pack(parts))
        if replies.poll is not None:
            replies.poll.sent(now)
        reply = await future
        if isinstance(reply, Exception):
            raise reply
        return reply

    @property
    def ready(self) -> bool:
        """True when :meth:`send_nowait` can send now."""
        replies, transport = self._replies, self._transport
        return (
            replies is not None
            and not replies.lost
            and transport is not None
            and not transport.is_closing()
            and not (self._lock is not None and self._lock.locked())
        )

    def send_nowait(self, args: list[Any], on_reply: Callable[[Any], None]) -> bool:
        """Send a call of the script without waiting for it: ``on_reply`` gets its reply,
        or the exception it failed with (an error reply, a timeout, a lost connection),
        from the socket's callback. False (nothing sent) unless the line is open, reads
        its socket itself and no awaited call is running."""
        if not self.ready:
            return False
        replies, transport = self._replies, self._transport
        assert replies is not None

        def landed(reply: Any) -> None:
            if isinstance(reply, Exception) and not _answered(reply):
                replies.lost = True  # a reply may still come: the next call remakes the line
            on_reply(reply)

        request = pack(("EVALSHA", self._script.sha, 0, *args))
        loop = asyncio.get_running_loop()
        now = loop.time()
        transport.write(request)  # if this raises, nothing waits for a reply
        replies.waiting.append((landed, now))  # no reply is read before this returns
        if self._timer is None and self._timeout:
            self._timer = loop.call_at(now + self._timeout, self._watch)
        if replies.poll is not None:
            replies.poll.sent(now)
        return True

    def _watch(self) -> None:
        """Fail the requests whose reply is overdue (the server hangs or is gone)."""
        self._timer = None
        replies, timeout = self._replies, self._timeout
        if replies is None or not replies.waiting or not timeout:
            return
        oldest = replies.waiting[0][1]
        loop = asyncio.get_running_loop()
        if loop.time() - oldest >= timeout:
            from redis.exceptions import TimeoutError as RedisTimeoutError

            replies.fail(RedisTimeoutError("Timeout reading from the Redis socket"))
        else:
            self._timer = loop.call_at(oldest + timeout, self._watch)

    async def _drop(self) -> None:
        await self.close(disconnect=True)

    async def close(self, disconnect: bool = False) -> None:
        """Give the connection back to the pool (closed first if ``disconnect``, or if
        this line read its socket itself)."""
        connection, self._connection = self._connection, None
        replies, self._replies = self._replies, None
        self._transport = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if connection is None:
            return
        if disconnect or replies is not None:
            if replies is not None:
                replies.fail(_connection_error("the line was closed"))
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)
        with contextlib.suppress(Exception):
            await self._client.connection_pool.release(connection)


def _pack(parts: tuple[Any, ...]) -> bytes:
    """A command in the Redis protocol (RESP): ``str`` as UTF-8, ``int`` and ``float``
    as their ``repr``, ``bytes`` as they are (as redis-py encodes them, at a quarter of
    its cost for a script call's few arguments)."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        if isinstance(part, str):
            part = part.encode()
        elif isinstance(part, (int, float)) and not isinstance(part, bool):
            part = repr(part).encode()
        elif not isinstance(part, (bytes, bytearray, memoryview)):
            raise TypeError(f"cannot send a {type(part).__name__} to Redis")
        out.append(b"$%d\r\n" % len(part))
        out.append(part)
        out.append(b"\r\n")
    return b"".join(out)


def _pack_with_hiredis(parts: tuple[Any, ...]) -> bytes:
    """:func:`_pack` in C (hiredis; the same bytes, a third of the time)."""
    try:
        return _pack_command(parts)
    except TypeError:  # e.g. a bool or None: refused with _pack's message
        return _pack(parts)


try:
    from hiredis import pack_command as _pack_command
except ImportError:  # pragma: no cover - hiredis comes with the redis extra
    pack = _pack
else:
    pack = _pack_with_hiredis


P = TypeVar("P", bound=asyncio.BaseProtocol)


async def _take_over(
    connection: Any, make: Callable[[Any, asyncio.BaseProtocol], P]
) -> tuple[Any, P] | None:
    """Put ``make(hiredis reader, redis-py's protocol)`` on ``connection``'s transport, so
    replies reach it instead of redis-py's stream; return (transport, protocol), or None
    without hiredis or a reachable transport (the connection is left as it was).

    A pooled connection that the server closed while it sat idle (a restart) is made
    again first: its closed transport would take writes and drop them, unanswered."""
    reader = _hiredis_reader()
    transport = _transport(connection)
    if reader is None or transport is None:
        return None
    stream = connection._reader
    if transport.is_closing() or stream.at_eof() or getattr(stream, "_buffer", b""):
        await connection.disconnect()
        await connection.connect()
        transport = _transport(connection)
        if transport is None:
            return None
    protocol = make(reader, transport.get_protocol())
    transport.set_protocol(protocol)
    return transport, protocol


def _transport(connection: Any) -> Any:
    """The asyncio transport under a redis-py connection (None if it has none, or one
    that cannot take another protocol)."""
    transport = getattr(getattr(connection, "_writer", None), "transport", None)
    return transport if hasattr(transport, "set_protocol") else None


def _hiredis_reader() -> Any:
    """A hiredis reader that makes error replies into redis-py's exceptions (None
    without hiredis)."""
    try:
        import hiredis
        from redis._parsers import BaseParser
    except ImportError:
        return None
    return hiredis.Reader(replyError=BaseParser.parse_error)
