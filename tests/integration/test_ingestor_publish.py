"""The atomic publish against real Redis: seq + cache + publish in one script, the cache
never moving backwards when two replicas overlap, a batch in one pipeline.

The checks take a client, so `test_cluster_redis.py` runs them on a Redis Cluster too."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from tickwire.core import names
from tickwire.core.bus import tick_bus
from tickwire.core.codecs import decode_tick
from tickwire.core.models import StockQuote
from tickwire.core.redisconn import RedisClient, redis_client
from tickwire.ingestor.publisher import TickPublisher

T0 = datetime(2026, 12, 2, 14, 30, tzinfo=timezone.utc)


def quote(symbol: str, price: float, at: datetime) -> StockQuote:
    return StockQuote(symbol=symbol, price=price, change=0.0, change_percent=0.0, volume=1,
                      high=price, low=price, open=price, previous_close=price,
                      timestamp=at.isoformat().replace("+00:00", "Z"), source="test")


class Listener:
    """The ticks a bus receives, as a subscriber of the given symbols sees them."""

    def __init__(self, redis: RedisClient):
        self.ticks = []
        self.arrived = asyncio.Event()
        self.bus = tick_bus(redis, on_message=self._on_message, standing_channels=())
        self._task: asyncio.Task | None = None

    def _on_message(self, channel: str, payload: bytes) -> None:
        self.ticks.append(decode_tick(payload))
        self.arrived.set()

    async def __aenter__(self):
        self._task = asyncio.create_task(self.bus.run())
        await asyncio.wait_for(self.bus.connected.wait(), 10)
        return self

    async def __aexit__(self, *_):
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def until(self, count: int) -> None:
        async with asyncio.timeout(15):
            while len(self.ticks) < count:
                self.arrived.clear()
                await self.arrived.wait()


def at(start, seconds: float) -> float:
    """The Unix time a replica observed a quote, `seconds` after `start`."""
    return (start + timedelta(seconds=seconds)).timestamp()


async def cached(redis: RedisClient, symbol: str):
    payload = await redis.get(names.quote_key(symbol))
    return decode_tick(payload) if payload else None


async def check_an_older_quote_never_replaces_a_newer_one(redis: RedisClient) -> None:
    # Two replicas own AAPL for a moment (a rebalance): B polled before A but is late.
    replica_a, replica_b = TickPublisher(redis), TickPublisher(redis)
    async with Listener(redis) as listener:
        await listener.bus.subscribe([names.tick_channel("AAPL")])
        newer = await replica_a.publish(quote("AAPL", 101.0, T0), at(T0, 2))
        assert newer is not None and newer.seq == 1
        assert await replica_b.publish(quote("AAPL", 100.0, T0), at(T0, 0)) is None
        # A quote observed as late is not older: it is published, with the next seq.
        after = await replica_b.publish(quote("AAPL", 102.0, T0), at(T0, 2))
        assert after is not None and (after.seq, after.epoch) == (2, newer.epoch)
        await listener.until(2)
    assert [(t.seq, t.data["price"]) for t in listener.ticks] == [(1, 101.0), (2, 102.0)]
    latest = await cached(redis, "AAPL")
    assert (latest.seq, latest.data["price"]) == (2, 102.0)
    await replica_a.aclose()
    await replica_b.aclose()


async def check_racing_replicas_keep_cache_and_channel_in_seq_order(redis: RedisClient) -> None:
    replicas = [TickPublisher(redis) for _ in range(2)]
    rounds = 60
    async with Listener(redis) as listener:
        await listener.bus.subscribe([names.tick_channel("MSFT")])

        async def replica(n: int) -> None:
            for i in range(rounds):
                await replicas[n].publish(quote("MSFT", 200 + i + n / 10, T0), at(T0, i))

        await asyncio.gather(replica(0), replica(1))
        counter = int(await redis.hget(names.seq_key("MSFT"), "seq"))
        await listener.until(counter)
    seqs = [t.seq for t in listener.ticks]
    assert seqs == list(range(1, counter + 1))  # in order, none missing
    # Each replica publishes every one of its own quotes unless the other one's was newer.
    assert rounds <= counter <= 2 * rounds
    assert (await cached(redis, "MSFT")).seq == counter  # the cache holds the newest
    for publisher in replicas:
        await publisher.aclose()


async def check_a_batch_publishes_each_symbol(redis: RedisClient) -> None:
    publisher = TickPublisher(redis)
    symbols = [f"B{i}" for i in range(40)]
    ticks = await publisher.publish_batch([quote(s, 10.0, T0) for s in symbols])
    assert [(t.symbol, t.seq) for t in ticks] == [(s, 1) for s in symbols]
    # Unchanged quotes are not published again; a changed one continues its sequence.
    again = await publisher.publish_batch([quote("B0", 10.0, T0), quote("B1", 11.0, T0)])
    assert again[0] is None and again[1].seq == 2
    assert [(await cached(redis, s)).seq for s in ("B0", "B1", "B39")] == [1, 2, 1]
    await publisher.aclose()


@pytest.fixture
async def redis(redis_url: str):
    client = redis_client(redis_url)
    yield client
    await client.aclose()


async def test_an_older_quote_never_replaces_a_newer_one(redis):
    await check_an_older_quote_never_replaces_a_newer_one(redis)


async def test_racing_replicas_keep_cache_and_channel_in_seq_order(redis):
    await check_racing_replicas_keep_cache_and_channel_in_seq_order(redis)


async def test_a_batch_publishes_each_symbol(redis):
    await check_a_batch_publishes_each_symbol(redis)
