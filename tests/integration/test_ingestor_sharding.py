"""Several ingestor replicas against real Kafka: the symbols are split without overlap, a
dead replica's symbols are taken over, `seq` continues, and fresh data is not refetched."""

from __future__ import annotations

import asyncio
import time

from tickwire.core import names

from integration.ingestor_fakes import (TD, FakeApi, active_symbols, cached, cached_from,
                                             metric, provider_env, providers_api, redis_at,
                                             start_ingestor)
from integration.ingestor_fakes import fake_apis  # noqa: F401 (a fixture)
from integration.wsclient import eventually

SYMBOLS = {f"S{n:02d}": 1 for n in range(12)} | {"FLAT": 1}


async def owned(service) -> set[str]:
    return set((await providers_api(service))["symbols"])


async def test_two_replicas_split_the_symbols_and_take_over_a_dead_ones(
        stack, kafka_bootstrap, redis_url, fake_apis):
    # One fake per replica, so every request can be traced to the replica that made it.
    api1, api2 = FakeApi(flat={"FLAT"}).start(), FakeApi(flat={"FLAT"}).start()
    fake_apis.extend([api1, api2])
    one = await start_ingestor(stack, "ingestor-1", **provider_env(api1, "twelvedata"))
    two = await start_ingestor(stack, "ingestor-2", **provider_env(api2, "twelvedata"))
    async with active_symbols(kafka_bootstrap) as activate, redis_at(redis_url) as redis:
        await activate(SYMBOLS)

        async def split() -> tuple[set[str], set[str]] | None:
            mine, theirs = await owned(one), await owned(two)
            if mine and theirs and not mine & theirs and mine | theirs == set(SYMBOLS):
                return mine, theirs
            return None

        mine, theirs = await eventually(split, timeout=40)
        for symbol in SYMBOLS:
            await cached_from(redis, symbol, "twelvedata")
        # Steady state: each replica asks only for its own symbols.
        since = time.monotonic()
        await eventually(lambda: _asked_all(api1, mine, since))
        await eventually(lambda: _asked_all(api2, theirs, since))
        assert api1.symbols_asked(since=since) == mine
        assert api2.symbols_asked(since=since) == theirs
        before = {s: await cached(redis, s) for s in theirs}

        # Replica two dies without leaving the group: after its session times out, replica
        # one owns everything and continues the sequences it took over.
        two.process.kill()
        await eventually(lambda: _owns(one, set(SYMBOLS)), timeout=60)
        moved = theirs - {"FLAT"}
        for symbol in moved:
            after = await cached_from(redis, symbol, "twelvedata", min_seq=before[symbol].seq + 1)
            assert after.epoch == before[symbol].epoch
        assert moved <= api1.symbols_asked(since=since)
        # A quote that never changes was published once, though fetched by both replicas
        # in turn (when two joined, and when one took it back, if it moved at all).
        assert "FLAT" in api1.symbols_asked(TD) | api2.symbols_asked(TD)
        assert (await cached(redis, "FLAT")).seq == 1
        assert await redis.hget(names.seq_key("FLAT"), "seq") == b"1"
        assert await metric(one, "tickwire_ingestor_owned_symbols") == len(SYMBOLS)
        assert api1.symbols_asked() | api2.symbols_asked() <= set(SYMBOLS)


async def _asked_all(api: FakeApi, symbols: set[str], since: float) -> bool:
    return api.symbols_asked(since=since) >= symbols


async def _owns(service, symbols: set[str]) -> bool:
    return await owned(service) == symbols


async def test_a_fresh_cached_quote_is_not_refetched_after_a_restart(
        stack, kafka_bootstrap, redis_url, fake_apis):
    api = FakeApi().start()
    fake_apis.append(api)
    env = provider_env(api, "twelvedata", TICKWIRE_INGESTOR_POLL_INTERVAL=30)
    first = await start_ingestor(stack, "ingestor-1", **env)
    async with active_symbols(kafka_bootstrap) as activate, redis_at(redis_url) as redis:
        await activate({"AAPL": 1})
        tick = await cached_from(redis, "AAPL", "twelvedata")
        lags = [await metric(first, "tickwire_ingestor_kafka_consumer_lag", partition=str(p))
                for p in range(6)]
        assert lags == [0] * 6  # every partition assigned, measured and read to its end
        await asyncio.to_thread(first.process.stop)
        # Fetched 60 s ago by someone: older than the poll interval, due at once.
        await redis.hset(names.feed_key("OLD"), "fetchedAt", int((time.time() - 60) * 1000))

        second = await start_ingestor(stack, "ingestor-2", **env)
        await activate({"OLD": 1, "NEW": 1})
        await eventually(lambda: _owns(second, {"AAPL", "OLD", "NEW"}), timeout=40)
        await cached_from(redis, "NEW", "twelvedata")
        await cached_from(redis, "OLD", "twelvedata")
        # A symbol activated later is fetched by a later pass: AAPL had every chance too.
        await activate({"LATER": 1})
        await cached_from(redis, "LATER", "twelvedata")
        assert sum("AAPL" in r.symbols for r in api.asked(TD)) == 1
        assert await cached(redis, "AAPL") == tick
