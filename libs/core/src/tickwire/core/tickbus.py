"""The Redis tick bus: publish ticks (cache + Pub/Sub) and subscribe to channels.

Delivery guarantee: at most once, in publish order per channel, as Redis Pub/Sub gives.
A subscriber that loses its connection reconnects with backoff and resubscribes every
channel it held; ticks published meanwhile are lost, and clients converge through the
cache snapshot and `seq`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tickwire.core import names
from tickwire.core.codecs import DecodeError, decode_tick, encode_tick
from tickwire.core.models import Tick

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]


class TickBus(Protocol):
    async def publish(self, tick: Tick) -> None: ...
    async def latest(self, symbols: list[str]) -> list[Tick | None]: ...
    async def subscribe(self, channels: Iterable[str]) -> None: ...
    async def unsubscribe(self, channels: Iterable[str]) -> None: ...


def redis_client(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, socket_connect_timeout=3, health_check_interval=15)


class RedisTickBus:
    """Ticks over Redis. `on_message(channel, payload)` is called for every message on a
    subscribed channel, in order, from one listener task (`run`)."""

    def __init__(self, redis: aioredis.Redis, on_message: MessageHandler | None = None,
                 standing_channels: Iterable[str] = (names.CONTROL_CHANNEL,)):
        self._redis = redis
        self._on_message = on_message
        self._standing = tuple(standing_channels)
        self._channels: set[str] = set()
        self._pubsub = None
        self._lock = asyncio.Lock()
        self.connected = asyncio.Event()

    @property
    def redis(self) -> aioredis.Redis:
        return self._redis

    # -- publishing ---------------------------------------------------------------

    async def publish(self, tick: Tick) -> None:
        """Cache the tick as the symbol's latest quote and publish it, atomically."""
        payload = encode_tick(tick)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(names.quote_key(tick.symbol), payload)
            pipe.publish(names.tick_channel(tick.symbol), payload)
            await pipe.execute()

    async def latest(self, symbols: list[str]) -> list[Tick | None]:
        """The cached latest tick of each symbol (None where nothing is cached)."""
        if not symbols:
            return []
        payloads = await self._redis.mget([names.quote_key(s) for s in symbols])
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
        new = [c for c in channels if c not in self._channels]
        if not new:
            return
        self._channels.update(new)
        async with self._lock:
            if self._pubsub is not None:
                try:
                    await self._pubsub.subscribe(*new)
                except (RedisError, OSError):
                    self._channels.difference_update(new)
                    raise

    async def unsubscribe(self, channels: Iterable[str]) -> None:
        gone = [c for c in channels if c in self._channels]
        if not gone:
            return
        self._channels.difference_update(gone)
        async with self._lock:
            if self._pubsub is not None:
                try:
                    await self._pubsub.unsubscribe(*gone)
                except (RedisError, OSError):
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
                await self._close()
                raise
            except (RedisError, OSError) as exc:
                self.connected.clear()
                await self._close()
                delay = min(5.0, 0.1 * 2 ** attempt) * random.uniform(0.5, 1.0)
                attempt += 1
                log.warning("redis subscriber lost; reconnecting",
                            extra={"error": repr(exc), "retry_in_s": round(delay, 2)})
                await asyncio.sleep(delay)

    async def _connect(self) -> None:
        async with self._lock:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            # Standing channels (control, feed status) are always held, which also keeps
            # the connection readable before the first symbol is subscribed.
            await pubsub.subscribe(*self._standing, *self._channels)
            self._pubsub = pubsub
        self.connected.set()

    async def _listen(self) -> None:
        on_message = self._on_message
        pubsub = self._pubsub
        while True:
            message = await pubsub.get_message(timeout=5.0)
            if message is None or message["type"] != "message" or on_message is None:
                continue
            channel = message["channel"]
            on_message(channel.decode() if isinstance(channel, bytes) else channel,
                       message["data"])

    async def _close(self) -> None:
        async with self._lock:
            pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()
            except (RedisError, OSError):
                pass
