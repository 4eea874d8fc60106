"""The Redis tick bus: publish ticks (cache + Pub/Sub) and subscribe to channels.

Delivery guarantee: at most once, in publish order per channel, as Redis Pub/Sub gives.
A subscriber that loses its connection reconnects with backoff and resubscribes every
channel it held; ticks published meanwhile are lost, and clients converge through the
cache snapshot and `seq`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Protocol

from redis.exceptions import RedisError

from tickwire.core import names
from tickwire.core.backoff import backoff_delay
from tickwire.core.codecs import DecodeError, decode_tick, encode_tick
from tickwire.core.models import Tick
from tickwire.core.pubsub import MessageHandler, SubscriberConnection
from tickwire.core.redisconn import RedisClient, is_cluster, tick_publish_command

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 10.0  # seconds Redis may take to answer SUBSCRIBE, AUTH or PING
HEALTH_CHECK_SECONDS = 15.0


class TickBus(Protocol):
    """The port the edge is written against: the Redis bus in service, an in-memory one
    in unit tests. Messages of a channel with its own handler (`on`) go to that handler,
    every other subscribed channel's to the tick handler (`on_ticks`)."""

    connected: asyncio.Event
    # Changes whenever messages may have gone missing: a subscriber connection (or a
    # channel) lost, and again once it is back. What was seen before says nothing of now.
    gaps: int

    def on(self, channel: str, handler: MessageHandler) -> None: ...
    def on_ticks(self, handler: MessageHandler) -> None: ...
    async def publish(self, tick: Tick) -> None: ...
    async def latest(self, symbols: list[str]) -> list[Tick | None]: ...
    async def subscribe(self, channels: Iterable[str]) -> None: ...
    async def unsubscribe(self, channels: Iterable[str]) -> None: ...


class RedisTickBus:
    """Ticks over Redis. `on_message(channel, payload)` is called for every message on a
    subscribed channel, in order, while `run` holds the subscriber connection (in passes
    of bounded length, see `pubsub`)."""

    def __init__(self, redis: RedisClient, on_message: MessageHandler | None = None,
                 standing_channels: Iterable[str] = (names.CONTROL_CHANNEL,)):
        self._redis = redis
        self._on_message = on_message
        self._standing = tuple(standing_channels)
        self._handlers: dict[str, MessageHandler] = {}
        self._channels: set[str] = set()
        self._conn: SubscriberConnection | None = None
        self._lock = asyncio.Lock()
        self.connected = asyncio.Event()
        self.gaps = 0

    @property
    def redis(self) -> RedisClient:
        return self._redis

    def on(self, channel: str, handler: MessageHandler) -> None:
        """Hold `channel` for the bus's whole life and hand its messages to `handler`
        (set before `run`)."""
        self._handlers[channel] = handler
        if channel not in self._standing:
            self._standing = (*self._standing, channel)

    def on_ticks(self, handler: MessageHandler) -> None:
        """Where the messages of every channel without a handler of its own go."""
        self._on_message = handler

    def _dispatch(self, channel: str, payload: bytes) -> None:
        handler = self._handlers.get(channel, self._on_message)
        if handler is not None:
            handler(channel, payload)

    # -- publishing ---------------------------------------------------------------

    async def publish(self, tick: Tick) -> None:
        """Cache the tick as the symbol's latest quote and publish it, atomically, as
        numbered by the caller (the ingestor numbers its own: `TickPublisher`)."""
        payload = encode_tick(tick)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(names.quote_key(tick.symbol), payload)
            pipe.execute_command(tick_publish_command(self._redis),
                                 names.tick_channel(tick.symbol), payload)
            await pipe.execute()

    async def latest(self, symbols: list[str]) -> list[Tick | None]:
        """The cached latest tick of each symbol (None where nothing is cached)."""
        if not symbols:
            return []
        keys = [names.quote_key(s) for s in symbols]
        # On a cluster the keys live in many slots: one MGET per node, not one atomic read.
        payloads = await (self._redis.mget_nonatomic(keys) if is_cluster(self._redis)
                          else self._redis.mget(keys))
        ticks: list[Tick | None] = []
        for payload in payloads:
            try:
                ticks.append(decode_tick(payload) if payload else None)
            except DecodeError:
                log.warning("undecodable cache entry", extra={"payload": payload[:80]})
                ticks.append(None)
        return ticks

    # -- subscribing ----------------------------------------------------------------

    async def subscribe(self, channels: Iterable[str]) -> None:
        """Returns once Redis confirmed the new channels (or, while disconnected, at once:
        the listener subscribes them when it connects). Raises OSError when Redis does
        not confirm; the channels are then not held."""
        new = [c for c in channels if c not in self._channels]
        if not new:
            return
        self._channels.update(new)
        async with self._lock:
            if self._conn is not None:
                try:
                    await asyncio.wait_for(self._conn.subscribe(new), COMMAND_TIMEOUT)
                except OSError:
                    self._channels.difference_update(new)
                    raise

    async def unsubscribe(self, channels: Iterable[str]) -> None:
        gone = [c for c in channels if c in self._channels]
        if not gone:
            return
        self._channels.difference_update(gone)
        async with self._lock:
            if self._conn is not None:
                try:
                    self._conn.unsubscribe(gone)
                except OSError:
                    # The listener reconnects and resubscribes only what is still wanted.
                    log.warning("redis unsubscribe failed; dropped on reconnect")

    @property
    def channels(self) -> frozenset[str]:
        return frozenset(self._channels)

    async def run(self) -> None:
        """Listen until cancelled, reconnecting with exponential backoff and jitter."""
        attempt = 0
        while True:
            try:
                await self._connect()
                attempt = 0
                await self._listen()
            except asyncio.CancelledError:
                self._close()
                raise
            except (RedisError, OSError) as exc:
                self.connected.clear()
                self.gaps += 1
                self._close()
                delay = backoff_delay(attempt, 0.1, 5.0)
                attempt += 1
                log.warning("redis subscriber lost; reconnecting",
                            extra={"error": repr(exc), "retry_in_s": round(delay, 2)})
                await asyncio.sleep(delay)

    async def _connect(self) -> None:
        pool = self._redis.connection_pool
        conn = await SubscriberConnection.open(pool.connection_kwargs, pool.connection_class,
                                               self._dispatch, COMMAND_TIMEOUT)
        try:
            async with self._lock:
                # Standing channels (control, feed status) are always held.
                await asyncio.wait_for(conn.subscribe([*self._standing, *self._channels]),
                                       COMMAND_TIMEOUT)
                self._conn = conn
        except BaseException:
            conn.close()
            raise
        self.connected.set()
        self.gaps += 1  # what was read while disconnected may predate ticks never seen

    async def _listen(self) -> None:
        """Messages arrive through the connection's callback; this only watches that it
        lives: a PING every HEALTH_CHECK_SECONDS must be answered in COMMAND_TIMEOUT."""
        conn = self._conn
        while True:
            done, _ = await asyncio.wait([conn.closed], timeout=HEALTH_CHECK_SECONDS)
            if done:
                raise ConnectionResetError(f"redis subscriber connection ended: {conn.closed.result()!r}")
            await asyncio.wait_for(conn.ping(), COMMAND_TIMEOUT)

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
