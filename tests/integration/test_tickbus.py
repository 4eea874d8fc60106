"""The Redis tick bus's subscriber against a real Redis: order, confirmation, AUTH,
reconnection, and a handler that fails."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

import pytest
import redis.asyncio as aioredis

from tickwire.core import names
from tickwire.core.codecs import decode_tick, encode_tick
from tickwire.core.pubsub import DISPATCH_BUDGET, SubscriberConnection
from tickwire.core.tickbus import RedisTickBus

from edge_fakes import LoopPasses
from integration.ticks import make_tick

pytestmark = pytest.mark.asyncio


class Received:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.arrived = asyncio.Event()

    def __call__(self, channel: str, payload: bytes) -> None:
        self.messages.append((channel, payload))
        self.arrived.set()

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.messages) < count:
                self.arrived.clear()
                await self.arrived.wait()


@contextlib.asynccontextmanager
async def listening(url: str, on_message, standing=(names.CONTROL_CHANNEL,)):
    redis = aioredis.Redis.from_url(url)
    bus = RedisTickBus(redis, on_message=on_message, standing_channels=standing)
    task = asyncio.create_task(bus.run())
    try:
        async with asyncio.timeout(10):
            await bus.connected.wait()
        yield bus, redis
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await redis.aclose()


async def test_every_message_arrives_in_publish_order_once_subscribe_returns(redis_url):
    received = Received()
    async with listening(redis_url, received) as (bus, redis):
        channels = [names.tick_channel(f"S{i}") for i in range(50)]
        await bus.subscribe(channels)
        # subscribe() returned: Redis confirmed, so nothing published now can be missed.
        async with redis.pipeline(transaction=False) as pipe:
            for seq in range(1, 201):
                for channel in channels[:5]:
                    pipe.publish(channel, encode_tick(make_tick(names.symbol_from_channel(channel),
                                                                seq)))
            await pipe.execute()
        await received.wait_for(1000)
        for channel in channels[:5]:
            payloads = [p for c, p in received.messages if c == channel]
            assert len(payloads) == 200
            assert [decode_tick(p).seq for p in payloads] == list(range(1, 201))
        assert bus.channels == frozenset(channels)


async def test_a_burst_is_handed_over_in_bounded_passes_in_order(redis_url):
    """A burst that takes longer to handle than one pass's budget is split over passes:
    other callbacks run in between, the order holds across the split, and a reply (PONG)
    that came after the burst is handed over after all of it."""
    seen_at: list[int] = []  # the pass counter when each message was handled
    received = Received()
    passes = LoopPasses()

    def slow_handler(channel: str, payload: bytes) -> None:
        spin_until = time.perf_counter() + DISPATCH_BUDGET / 10  # CPU work, not a sleep
        while time.perf_counter() < spin_until:
            pass
        seen_at.append(passes.count)
        received(channel, payload)

    redis = aioredis.Redis.from_url(redis_url)
    pool = redis.connection_pool
    conn = await SubscriberConnection.open(pool.connection_kwargs, pool.connection_class,
                                           slow_handler, timeout=10)
    try:
        async with passes:
            channel = names.tick_channel("BURST")
            await conn.subscribe([channel])
            async with redis.pipeline(transaction=False) as pipe:
                for seq in range(1, 501):
                    pipe.publish(channel, encode_tick(make_tick("BURST", seq)))
                await pipe.execute()
            await asyncio.wait_for(conn.ping(), 30)  # sent after Redis queued the burst
            assert len(received.messages) == 500
        assert [decode_tick(p).seq for _, p in received.messages] == list(range(1, 501))
        # 500 x a tenth of the budget is 50 budgets: the loop ran other work in between.
        assert len(set(seen_at)) >= 10
    finally:
        conn.close()
        await redis.aclose()


async def test_unsubscribed_channels_stop_and_the_standing_channel_stays(redis_url):
    received = Received()
    async with listening(redis_url, received) as (bus, redis):
        await bus.subscribe([names.tick_channel("AAA"), names.tick_channel("BBB")])
        await bus.unsubscribe([names.tick_channel("AAA")])
        async with asyncio.timeout(5):
            while (await redis.pubsub_numsub(names.tick_channel("AAA")))[0][1]:
                await asyncio.sleep(0.02)
        await redis.publish(names.tick_channel("AAA"), b"gone")
        await redis.publish(names.CONTROL_CHANNEL, b"control")
        await redis.publish(names.tick_channel("BBB"), b"kept")
        await received.wait_for(2)
        assert received.messages == [(names.CONTROL_CHANNEL, b"control"),
                                     (names.tick_channel("BBB"), b"kept")]


async def test_a_failing_handler_loses_only_its_own_message(redis_url):
    seen: list[bytes] = []

    def handler(channel: str, payload: bytes) -> None:
        if payload == b"boom":
            raise RuntimeError("handler bug")
        seen.append(payload)

    async with listening(redis_url, handler) as (bus, redis):
        channel = names.tick_channel("CCC")
        await bus.subscribe([channel])
        for payload in (b"one", b"boom", b"two"):
            await redis.publish(channel, payload)
        async with asyncio.timeout(5):
            while len(seen) < 2:
                await asyncio.sleep(0.01)
        assert seen == [b"one", b"two"]


async def test_resubscribes_everything_after_redis_drops_the_connection(redis_url):
    received = Received()
    async with listening(redis_url, received) as (bus, redis):
        channel = names.tick_channel("DDD")
        await bus.subscribe([channel])
        killed = await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        assert killed >= 1
        async with asyncio.timeout(10):
            while (await redis.pubsub_numsub(channel))[0][1] == 0:
                await asyncio.sleep(0.05)
            await bus.connected.wait()
        tick = make_tick("DDD", 1)
        await bus.publish(tick)
        await received.wait_for(1)
        assert decode_tick(received.messages[0][1]) == tick


async def test_authenticates_with_username_and_password(redis_url):
    admin = aioredis.Redis.from_url(redis_url)
    user, password = f"sub-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await admin.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", "+@all")
    try:
        host_port = redis_url.split("://", 1)[1]
        received = Received()
        async with listening(f"redis://{user}:{password}@{host_port}", received) as (bus, redis):
            await bus.subscribe([names.tick_channel("EEE")])
            await redis.publish(names.tick_channel("EEE"), b"authenticated")
            await received.wait_for(1)
        assert received.messages == [(names.tick_channel("EEE"), b"authenticated")]
    finally:
        await admin.execute_command("ACL", "DELUSER", user)
        await admin.aclose()


class Retries(logging.Handler):
    """Counts the bus's reconnect attempts, as it logs them."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "reconnecting" in record.getMessage():
            self.count += 1
            self._changed.set()

    async def reached(self, count: int) -> None:
        while self.count < count:
            self._changed.clear()
            await self._changed.wait()


async def test_a_refused_password_is_retried_not_fatal(redis_url):
    host_port = redis_url.split("://", 1)[1]
    redis = aioredis.Redis.from_url(f"redis://nobody:wrong@{host_port}")
    bus = RedisTickBus(redis, on_message=Received())
    retries = Retries()
    logging.getLogger("tickwire.core.tickbus").addHandler(retries)
    task = asyncio.create_task(bus.run())
    try:
        await asyncio.wait_for(retries.reached(2), 10)
    finally:
        logging.getLogger("tickwire.core.tickbus").removeHandler(retries)
    assert not task.done() and not bus.connected.is_set()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await redis.aclose()
