"""Symbols watched once and then released leave nothing behind (issue #19, item 3): their
Redis keys get a TTL when they go inactive (short here), and the ingestor forgets them."""

from __future__ import annotations

import redis.asyncio as aioredis

from tickwire.core import names

from integration.test_registry import active_symbols
from integration.wsclient import eventually, get_json, subscribed

SYMBOLS = [f"GONE{n}" for n in range(150)]


def _keys(symbol: str) -> list[str]:
    return [names.quote_key(symbol), names.seq_key(symbol), names.feed_key(symbol),
            names.session_key(symbol)]


async def _existing(redis: aioredis.Redis) -> int:
    return sum([await redis.exists(*_keys(s)) for s in SYMBOLS])


async def _ingestor_symbols(url: str) -> set[str]:
    status, body, _ = await get_json(f"{url}/api/providers")
    assert status == 200, body
    return set(body["symbols"])


async def test_released_symbols_expire_from_redis_and_the_ingestor(stack, redis_url):
    registry = stack.registry()
    ingestor = stack.ingestor(TICKWIRE_INGESTOR_INACTIVE_KEY_TTL_SECONDS="3")
    edge = stack.edge("edge-t1")
    redis = aioredis.Redis.from_url(redis_url)
    try:
        start = await _live_keys(redis)
        client = await subscribed(edge.ws_url, SYMBOLS)
        try:
            await eventually(lambda: _all_cached(redis), timeout=60)
            assert set(SYMBOLS) <= await _ingestor_symbols(ingestor.url)
            held = await _live_keys(redis)
            # A quote of a watched symbol has no TTL.
            assert await redis.ttl(names.quote_key(SYMBOLS[0])) == -1
        finally:
            await client.close()
        await eventually(lambda: _none_active(registry.url), timeout=30)
        await eventually(lambda: _ingestor_forgot(ingestor.url), timeout=30)
        # Right after going inactive the cache is still there (a reload finds it) ...
        assert 0 < await redis.ttl(names.seq_key(SYMBOLS[0])) <= 3 or \
            not await redis.exists(names.seq_key(SYMBOLS[0]))
        # ... and then it goes.
        await eventually(lambda: _none_left(redis), timeout=30)
        end = await _live_keys(redis)
        assert end <= start + 10, (start, held, end, sorted(await redis.keys("*"))[:20])
        print(f"\nkeys {start} -> {held} while watched -> {end} after the TTL")
    finally:
        await redis.aclose()


async def _live_keys(redis: aioredis.Redis) -> int:
    """Keys that have not expired. DBSIZE also counts keys whose TTL has passed but that Redis
    has not reclaimed yet (it reclaims lazily on access and in a sampling cycle, which lags on
    a loaded machine); KEYS reads every key and so drops the expired ones."""
    return len(await redis.keys("*"))


async def _all_cached(redis: aioredis.Redis) -> bool:
    return all([await redis.exists(names.quote_key(s)) for s in SYMBOLS])


async def _none_left(redis: aioredis.Redis) -> bool:
    return await _existing(redis) == 0


async def _none_active(registry_url: str) -> bool:
    active = await active_symbols(registry_url)
    return not any(s in active for s in SYMBOLS)


async def _ingestor_forgot(url: str) -> bool:
    return not (set(SYMBOLS) & await _ingestor_symbols(url))
