"""The ingestor's Redis adapters against real Redis: the shared token bucket and the
test-and-set feed flags behind DATA_STALE."""

from __future__ import annotations

import asyncio

import msgpack

from tickwire.core import names
from tickwire.core.models import FeedState, FeedStatus
from tickwire.ingestor.feed import FeedStore, SharedState
from tickwire.ingestor.ratelimit import RateBudget

from integration.ingestor_fakes import redis_at


async def test_bucket_grants_exactly_its_capacity_to_concurrent_replicas(redis_url):
    async with redis_at(redis_url) as a, redis_at(redis_url) as b:
        # Two clients stand for two replicas; 60 tokens a minute = 1 per second of refill.
        budgets = [RateBudget(client, "twelvedata", 60, unit_cost=2) for client in (a, b)]
        grants = await asyncio.gather(*(budgets[n % 2].take(3) for n in range(40)))
        # 60 tokens at 2 per symbol: 30 symbols, handed out whole or partially, never more.
        assert sum(grants) in (30, 31)  # plus at most one refilled symbol during the calls
        assert max(grants) == 3
        assert await budgets[0].remaining() < 4  # under one symbol, plus what refilled since


async def test_bucket_minimum_drain_refill_and_unlimited(redis_url):
    async with redis_at(redis_url) as redis:
        budget = RateBudget(redis, "alphavantage", 600)  # 10 tokens a second
        assert await budget.take(600) == 600
        assert await budget.take(5, minimum=5) == 0  # all or nothing: not affordable
        await asyncio.sleep(0.5)
        assert await budget.take(3, minimum=3) == 3  # refilled about 5
        await budget.drain()
        assert await budget.remaining() < 1
        ttl = await redis.pttl(names.rate_bucket_key("alphavantage"))
        assert 0 < ttl <= 120_000
        unlimited = RateBudget(redis, "simulated", 0)
        assert not unlimited.limited and await unlimited.take(10_000) == 10_000
        assert await unlimited.remaining() is None


async def test_feed_flags_change_once_and_are_announced(redis_url):
    async with redis_at(redis_url) as redis, redis_at(redis_url) as other:
        store, rival = FeedStore(redis), FeedStore(other)  # two replicas, one symbol
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(names.STATUS_CHANNEL)
        assert await store.mark_stale(["AAPL", "MSFT"]) == ["AAPL", "MSFT"]
        assert await rival.mark_stale(["AAPL"]) == []
        assert await store.mark_fetched(["AAPL"], 1_700_000_000.5) == ["AAPL"]
        assert await rival.mark_fetched(["AAPL"], 1_700_000_001.0) == []
        shared = await store.load(["AAPL", "MSFT", "NONE"])
        assert (shared["AAPL"].fetched_at, shared["AAPL"].stale) == (1_700_000_001.0, False)
        assert shared["MSFT"].stale and shared["MSFT"].fetched_at is None
        assert shared["NONE"] == SharedState(None, False, None)

        await store.announce(FeedState.STALE, ["MSFT"], "twelvedata: HTTP 503")
        message = None
        for _ in range(50):
            message = await pubsub.get_message(timeout=0.1)
            if message:
                break
        wire = msgpack.unpackb(message["data"])
        assert wire["type"] == "stale" and wire["symbols"] == ["MSFT"]
        assert wire["reason"] == "twelvedata: HTTP 503" and isinstance(wire["ts"], int)
        assert FeedStatus.from_wire(wire).state is FeedState.STALE
        await pubsub.aclose()
