"""Retries, the circuit breaker, slow providers, DATA_STALE and the shared rate budget,
each end to end through the real ingestor process."""

from __future__ import annotations

import math
import time

from tickwire.core import names

from integration.ingestor_fakes import (TD, FakeApi, StatusListener, active_symbols, cached,
                                             cached_from, metric, provider_env, provider_state,
                                             providers_api, redis_at, start_ingestor)
from integration.ingestor_fakes import fake_apis  # noqa: F401 (a fixture)
from integration.wsclient import eventually


async def _circuit(ingestor, provider: str, state: str) -> bool:
    return provider_state(await providers_api(ingestor), provider)["circuit"] == state


async def test_errors_are_not_retried_transient_ones_are_and_the_circuit_opens_and_heals(
        stack, kafka_bootstrap, redis_url, fake_apis):
    api = FakeApi(td_mode="error_401").start()
    fake_apis.append(api)
    ingestor = await start_ingestor(stack, **provider_env(
        api, TICKWIRE_INGESTOR_BREAKER_FAILURES=3, TICKWIRE_INGESTOR_BREAKER_RESET_SECONDS=4,
        TICKWIRE_INGESTOR_RETRY_ATTEMPTS=3))
    async with active_symbols(kafka_bootstrap) as activate, redis_at(redis_url) as redis:
        await activate({"AAPL": 1})
        # A refused key: not retried; three failed requests open the circuit.
        await eventually(lambda: _circuit(ingestor, "twelvedata", "open"))
        assert len(api.asked(TD)) == 3
        assert await metric(ingestor, "tickwire_ingestor_provider_retries_total",
                            provider="twelvedata") == 0
        assert await metric(ingestor, "tickwire_ingestor_circuit_state", provider="twelvedata") == 2
        # Meanwhile Alpha Vantage serves, and the open circuit keeps Twelve Data unasked.
        seq = (await cached_from(redis, "AAPL", "alphavantage")).seq
        await cached_from(redis, "AAPL", "alphavantage", min_seq=seq + 3)
        if await _circuit(ingestor, "twelvedata", "open"):
            assert len(api.asked(TD)) == 3
        state = provider_state(await providers_api(ingestor), "twelvedata")
        assert state["lastError"].startswith("error: error 401") and state["failures"] == 3

        # 503s: the half-open probe is retried (3 tries), fails, and reopens the circuit.
        api.td_mode = "http_503"
        await eventually(lambda: _asked(api, 4), timeout=30)
        await eventually(lambda: _circuit(ingestor, "twelvedata", "open"))
        await eventually(lambda: _asked(api, 6), timeout=30)
        assert await metric(ingestor, "tickwire_ingestor_provider_retries_total",
                            provider="twelvedata") >= 2
        assert await metric(ingestor, "tickwire_ingestor_provider_requests_total",
                            provider="twelvedata", outcome="transient") >= 3

        # Healthy again: the next probe closes the circuit and Twelve Data serves again.
        api.td_mode = "ok"
        await cached_from(redis, "AAPL", "twelvedata")
        assert await _circuit(ingestor, "twelvedata", "closed")
        assert await metric(ingestor, "tickwire_ingestor_circuit_state", provider="twelvedata") == 0


async def _asked(api: FakeApi, n: int) -> bool:
    return len(api.asked(TD)) >= n


async def test_slow_provider_times_out_and_fails_over(stack, kafka_bootstrap, redis_url, fake_apis):
    api = FakeApi(td_mode="slow", slow_seconds=2).start()
    fake_apis.append(api)
    ingestor = await start_ingestor(stack, **provider_env(
        api, TICKWIRE_INGESTOR_REQUEST_TIMEOUT_SECONDS="0.5"))
    async with active_symbols(kafka_bootstrap) as activate, redis_at(redis_url) as redis:
        await activate({"AAPL": 1})
        await cached_from(redis, "AAPL", "alphavantage")
        state = provider_state(await providers_api(ingestor), "twelvedata")
        assert state["lastError"] == "transient: timed out"
        assert await metric(ingestor, "tickwire_ingestor_provider_requests_total",
                            provider="twelvedata", outcome="transient") >= 1


async def test_data_stale_once_per_change_while_the_cache_is_served(
        stack, kafka_bootstrap, redis_url, fake_apis):
    api = FakeApi().start()
    fake_apis.append(api)
    ingestor = await start_ingestor(stack, **provider_env(
        api, "twelvedata", TICKWIRE_INGESTOR_FRESHNESS_SECONDS="1",
        TICKWIRE_INGESTOR_BREAKER_FAILURES=1000, TICKWIRE_INGESTOR_RETRY_ATTEMPTS=1))
    async with (active_symbols(kafka_bootstrap) as activate, redis_at(redis_url) as redis,
                StatusListener(redis) as status):
        await activate({"AAPL": 1, "MSFT": 1})
        await cached_from(redis, "AAPL", "twelvedata")
        await cached_from(redis, "MSFT", "twelvedata")

        api.td_mode = "http_503"
        await eventually(lambda: _flagged(status, "stale", {"AAPL", "MSFT"}))
        last_good = {s: await cached(redis, s) for s in ("AAPL", "MSFT")}
        asked = len(api.asked(TD))
        await eventually(lambda: _asked(api, asked + 6))  # more failing rounds: no new notice
        assert sorted(s for m in status.of("stale") for s in m.symbols) == ["AAPL", "MSFT"]
        assert all("twelvedata: HTTP 503" in m.reason for m in status.of("stale"))
        for symbol, tick in last_good.items():
            assert await cached(redis, symbol) == tick  # the cache is still served
        assert (await providers_api(ingestor))["stale"] == ["AAPL", "MSFT"]
        assert await metric(ingestor, "tickwire_ingestor_stale_symbols") == 2
        assert await redis.hget(names.feed_key("AAPL"), "stale") == b"1"

        api.td_mode = "ok"
        await eventually(lambda: _flagged(status, "recovered", {"AAPL", "MSFT"}))
        await cached_from(redis, "AAPL", "twelvedata", min_seq=last_good["AAPL"].seq + 2)
        assert len(status.of("stale")) == len({m.ts for m in status.of("stale")})
        assert sorted(s for m in status.of("recovered") for s in m.symbols) == ["AAPL", "MSFT"]
        assert (await providers_api(ingestor))["stale"] == []


async def _flagged(status: StatusListener, state: str, symbols: set[str]) -> bool:
    return {s for m in status.of(state) for s in m.symbols} >= symbols


async def test_rate_budget_is_shared_by_replicas_and_spent_on_the_busiest_symbols(
        stack, kafka_bootstrap, redis_url, fake_apis):
    api = FakeApi().start()
    fake_apis.append(api)
    env = provider_env(api, "twelvedata,simulated",
                       TICKWIRE_INGESTOR_TWELVEDATA_CREDITS_PER_MINUTE=6,
                       TICKWIRE_INGESTOR_TWELVEDATA_CREDITS_PER_SYMBOL=2)
    first = await start_ingestor(stack, "ingestor-1", **env)
    subscribers = {"HOT": 90, "WARM": 40, "MID": 12, "COLD1": 1, "COLD2": 1, "COLD3": 1,
                   "COLD4": 1, "COLD5": 1}
    async with active_symbols(kafka_bootstrap) as activate, redis_at(redis_url) as redis:
        started = time.monotonic()
        await activate(subscribers)
        for symbol in subscribers:
            await cached_from(redis, symbol, "twelvedata" if subscribers[symbol] > 10
                              else "simulated")
        # 6 credits, 2 per symbol: the three symbols with the most subscribers got them.
        assert api.symbols_asked(TD) == {"HOT", "WARM", "MID"}
        budget = provider_state(await providers_api(first), "twelvedata")["budget"]
        assert budget["perMinute"] == 6 and budget["costPerSymbol"] == 2
        assert budget["remaining"] < 2

        # A second replica shares the bucket: it takes symbols over, but no extra credits.
        second = await start_ingestor(stack, "ingestor-2", **env)
        await eventually(lambda: _both_poll(first, second, set(subscribers)), timeout=40)
        for symbol in (await providers_api(second))["symbols"]:
            tick = await cached(redis, symbol)
            await cached_from(redis, symbol, tick.data["source"], min_seq=tick.seq + 1)
        elapsed = time.monotonic() - started
        credits = 2 * sum(len(r.symbols) for r in api.asked(TD))
        assert credits <= 6 + 2 * math.ceil(elapsed * 6 / 60 / 2)
        assert await metric(second, "tickwire_ingestor_rate_budget_remaining",
                            provider="twelvedata") < 2
        assert await redis.exists(names.rate_bucket_key("twelvedata"))
        assert api.symbols_asked() <= set(subscribers)


async def _both_poll(first, second, symbols: set[str]) -> bool:
    one = set((await providers_api(first))["symbols"])
    two = set((await providers_api(second))["symbols"])
    return one and two and not one & two and one | two == symbols

