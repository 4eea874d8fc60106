"""Batches of one Lua script on a connection of their own to a standalone Redis.

Why not a redis-py pipeline: under `bench.upstream` (thousands of scripts a second) a
quarter of the ingestor's CPU went to the pipeline: packing each command argument by
argument, parsing replies through layers of Python, an asyncio timeout per read. Here a
batch of EVALSHAs is packed into one write and its replies are parsed by hiredis in C as
they arrive, on a raw asyncio Protocol (as `pubsub` does for subscribers).

Guarantees:
- `run(calls)` returns, per call and in order, its reply or the exception it raised (a
  ResponseError and its subclasses, as redis-py's parser makes them); it never raises for
  a Redis or network failure;
- a server that does not know the script (restarted, `SCRIPT FLUSH`) gets it loaded, and
  only the calls it refused are run again, once;
- a lost connection fails every call still unanswered with a ConnectionError (it may or
  may not have run, as with any client), and the next batch opens a new connection; a
  connection that answers nothing for `socket_timeout` (default `REPLY_TIMEOUT`) seconds
  is dropped as lost;
- batches of concurrent callers share the connection and run in the order they are sent.

Standalone Redis only: on a Redis Cluster a script's calls go to the nodes serving their
keys, which redis-py's cluster pipeline knows (`redisconn.run_scripts`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import deque
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis._parsers.base import BaseParser
from redis.exceptions import ConnectionError, DataError, NoScriptError, RedisError, TimeoutError

from tickwire.core.resp import command, credentials, open_connection

log = logging.getLogger(__name__)

REPLY_TIMEOUT = 10.0    # seconds a sent batch may wait for its first missing reply
CONNECT_TIMEOUT = 3.0   # unless the client's socket_connect_timeout says otherwise
TEXT_REMEMBERED = 50_000  # packed text arguments kept for reuse (all forgotten beyond)

Call = tuple[list[Any], list[Any]]  # (keys, args) of one script run


def _bulk(value: Any) -> bytes:
    """One argument as a RESP bulk string, encoded as redis-py encodes it."""
    if isinstance(value, str):
        value = value.encode()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        value = repr(value).encode()
    elif not isinstance(value, bytes):
        raise DataError(f"a Redis argument must be bytes, str, int or float, not "
                        f"{type(value).__name__}")
    return b"$%d\r\n%s\r\n" % (len(value), value)


class _Batch:
    __slots__ = ("count", "replies", "future", "sent_at")

    def __init__(self, count: int, future: asyncio.Future, sent_at: float):
        self.count = count
        self.replies: list[Any] = []
        self.future = future
        self.sent_at = sent_at


class ScriptConnection(asyncio.Protocol):
    """One connection answering batches of commands in the order they were sent."""

    def __init__(self, timeout: float):
        self._loop = asyncio.get_running_loop()
        self._timeout = timeout
        self._reader = hiredis.Reader(replyError=BaseParser.parse_error)
        self._waiting: deque[_Batch] = deque()
        self._transport: asyncio.Transport | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._why_lost: RedisError | None = None
        self.lost = False

    def ask(self, payload: bytes, count: int) -> asyncio.Future:
        """A future of the replies to the `count` commands packed in `payload`, in order:
        each reply or the exception it came as; a ConnectionError for every command left
        unanswered when the connection ends. The future never fails."""
        future = self._loop.create_future()
        if not self.usable:
            future.set_result([ConnectionError("redis script connection closed")] * count)
            return future
        self._waiting.append(_Batch(count, future, self._loop.time()))
        self._transport.write(payload)
        if self._watchdog is None:
            self._watchdog = self._loop.call_later(self._timeout, self._watch)
        return future

    @property
    def usable(self) -> bool:
        """Open and not closing (a closing transport reports `connection_lost` later)."""
        return not self.lost and self._transport is not None and not self._transport.is_closing()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # -- the protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader, waiting = self._reader, self._waiting
        reader.feed(data)
        try:
            while (reply := reader.gets()) is not False:
                if not waiting:
                    raise hiredis.ProtocolError("a reply nothing was waiting for")
                batch = waiting[0]
                batch.replies.append(reply)
                if len(batch.replies) == batch.count:
                    waiting.popleft()
                    if not batch.future.done():  # its caller may have been cancelled
                        batch.future.set_result(batch.replies)
        except hiredis.ProtocolError as exc:
            self._drop(ConnectionError(f"redis protocol error: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        error = self._why_lost or ConnectionError(f"redis script connection lost: {exc!r}")
        while self._waiting:
            batch = self._waiting.popleft()
            if not batch.future.done():
                batch.future.set_result(batch.replies + [error] * (batch.count - len(batch.replies)))

    def _watch(self) -> None:
        """Drop the connection once the oldest unanswered batch waited `timeout`."""
        self._watchdog = None
        if not self._waiting:
            return
        left = self._waiting[0].sent_at + self._timeout - self._loop.time()
        if left <= 0:
            self._drop(TimeoutError(f"redis did not answer within {self._timeout}s"))
        else:
            self._watchdog = self._loop.call_later(left, self._watch)

    def _drop(self, why: RedisError) -> None:
        log.warning("redis script connection dropped", extra={"error": str(why)})
        self._why_lost = why
        self.lost = True
        if self._transport is not None:
            self._transport.abort()  # connection_lost fails what still waits


class ScriptBatches:
    """Runs one Lua script (`source`) in batches, on a connection of its own to the
    standalone Redis that `redis` (its pool's settings) points to; opened on first use."""

    def __init__(self, redis: aioredis.Redis, source: str):
        pool = redis.connection_pool
        self._kwargs, self._class = pool.connection_kwargs, pool.connection_class
        self._connect_timeout = self._kwargs.get("socket_connect_timeout") or CONNECT_TIMEOUT
        self._timeout = self._kwargs.get("socket_timeout") or REPLY_TIMEOUT
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._evalsha = b"$7\r\nEVALSHA\r\n$40\r\n%s\r\n" % self.sha.encode()
        self._load = command(b"SCRIPT", b"LOAD", source.encode())
        self._packed_text: dict[str, bytes] = {}
        self._conn: ScriptConnection | None = None
        self._opening: asyncio.Task | None = None

    async def run(self, calls: list[Call]) -> list[Any]:
        """Per call, in order: the script's reply or the exception it raised; never raises
        for a Redis or network failure (each call unanswered gets the exception)."""
        if not calls:
            return []
        packed = [self._pack(keys, args) for keys, args in calls]
        try:
            conn = await self._connection()
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            error = exc if isinstance(exc, RedisError) else ConnectionError(
                f"redis unreachable: {exc!r}")
            return [error] * len(calls)
        replies = await conn.ask(b"".join(packed), len(packed))
        refused = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if refused:
            await self._load_and_rerun(conn, packed, refused, replies)
        return replies

    async def _load_and_rerun(self, conn: ScriptConnection, packed: list[bytes],
                              refused: list[int], replies: list[Any]) -> None:
        """SCRIPT LOAD and the refused calls again, in one write (Redis runs them in order);
        a failed load is the reply of each call it leaves refused."""
        loaded, *again = await conn.ask(self._load + b"".join(packed[i] for i in refused),
                                        len(refused) + 1)
        for index, reply in zip(refused, again):
            failed_load = isinstance(loaded, Exception) and isinstance(reply, NoScriptError)
            replies[index] = loaded if failed_load else reply

    async def aclose(self) -> None:
        if self._opening is not None:
            self._opening.cancel()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _pack(self, keys: list[Any], args: list[Any]) -> bytes:
        """One EVALSHA. Text arguments (key names, and those every call of a batch shares)
        come back batch after batch, so their packed form is remembered."""
        packed = self._packed_text
        if len(packed) > TEXT_REMEMBERED:
            packed.clear()
        parts = [b"*%d\r\n" % (3 + len(keys) + len(args)), self._evalsha, _bulk(len(keys))]
        for value in (*keys, *args):
            if type(value) is bytes:
                parts.append(b"$%d\r\n%s\r\n" % (len(value), value))
            elif type(value) is str:
                if (bulk := packed.get(value)) is None:
                    bulk = packed[value] = _bulk(value)
                parts.append(bulk)
            else:
                parts.append(_bulk(value))
        return b"".join(parts)

    async def _connection(self) -> ScriptConnection:
        """The open connection, else a new one: concurrent callers share one attempt."""
        conn = self._conn
        if conn is not None and conn.usable:
            return conn
        if self._opening is None:
            self._opening = asyncio.create_task(self._open())
            self._opening.add_done_callback(self._opened)
        return await asyncio.shield(self._opening)

    def _opened(self, task: asyncio.Task) -> None:
        self._opening = None
        if not task.cancelled():
            task.exception()  # retrieved here too: every caller may have been cancelled

    async def _open(self) -> ScriptConnection:
        conn = await open_connection(lambda: ScriptConnection(self._timeout), self._kwargs,
                                     self._class, self._connect_timeout)
        setup = []
        if auth := credentials(self._kwargs):
            setup.append(command(b"AUTH", *auth))
        if db := self._kwargs.get("db"):
            setup.append(command(b"SELECT", str(db).encode()))
        if setup:
            failed = [r for r in await conn.ask(b"".join(setup), len(setup))
                      if isinstance(r, Exception)]
            if failed:
                conn.close()
                raise failed[0]
        self._conn = conn
        return conn
