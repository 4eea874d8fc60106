"""The real ingestor process against fake providers answering in the real formats:
batches, single answers, per-symbol failover, rate-limit notes, junk, replay."""

from __future__ import annotations

import time

import pytest

from integration.ingestor_fakes import (AV, TD, FakeApi, active_symbols, cached, cached_from,
                                             metric, provider_env, provider_state, providers_api,
                                             redis_at, start_ingestor)
from integration.ingestor_fakes import fake_apis  # noqa: F401 (a fixture)
from integration.wsclient import eventually


async def test_twelvedata_batches_single_answers_and_per_symbol_failover(
        stack, kafka_bootstrap, redis_url, fake_apis):
    api = FakeApi(td_unknown={"XXXX"}).start()
    fake_apis.append(api)
    ingestor = await start_ingestor(stack, **provider_env(api))
    async with active_symbols(kafka_bootstrap) as activate, redis_at(redis_url) as redis:
        await activate({"AAPL": 2, "MSFT": 1, "XXXX": 1})
        aapl = await cached_from(redis, "AAPL", "twelvedata", min_seq=2)
        assert (await cached_from(redis, "MSFT", "twelvedata")).data["price"] >= 100
        # Twelve Data has no XXXX (an error entry inside its batch): Alpha Vantage serves it.
        await cached_from(redis, "XXXX", "alphavantage")
        batches = [r.symbols for r in api.asked(TD) if len(r.symbols) > 1]
        assert batches and all(set(b) <= {"AAPL", "MSFT", "XXXX"} for b in batches)
        assert api.symbols_asked(AV) == {"XXXX"}
        assert aapl.epoch and aapl.data["symbol"] == "AAPL"

        # Down to one symbol: single-symbol requests, answered with the bare quote.
        await activate({"MSFT": 0, "XXXX": 0})
        await eventually(lambda: _owns(ingestor, {"AAPL"}))
        # Two more AAPL ticks: a round that still carried MSFT or XXXX has ended.
        seq = (await cached(redis, "AAPL")).seq
        await cached_from(redis, "AAPL", "twelvedata", min_seq=seq + 2)
        since = time.monotonic()
        await cached_from(redis, "AAPL", "twelvedata", min_seq=seq + 5)
        later = api.asked(since=since)
        assert later and all(r.symbols == ("AAPL",) for r in later)
        assert await metric(ingestor, "tickwire_ingestor_provider_requests_total",
                            provider="twelvedata", outcome="ok") > 0
        assert await metric(ingestor, "tickwire_ingestor_ingest_latency_seconds_count") > 0
        # Only symbols someone subscribed to were ever requested.
        assert api.symbols_asked() <= {"AAPL", "MSFT", "XXXX"}


async def _owns(ingestor, symbols: set[str]) -> bool:
    return set((await providers_api(ingestor))["symbols"]) == symbols


@pytest.mark.parametrize("limit_answer", ["note", "information"])
async def test_alphavantage_answers_and_rate_limit_failover(
        stack, kafka_bootstrap, redis_url, fake_apis, limit_answer):
    api = FakeApi(av_unknown={"BAD"}).start()
    fake_apis.append(api)
    ingestor = await start_ingestor(stack, **provider_env(
        api, "alphavantage,simulated", TICKWIRE_INGESTOR_RATE_LIMITED_PAUSE_SECONDS=60))
    async with active_symbols(kafka_bootstrap) as activate, redis_at(redis_url) as redis:
        await activate({"IBM": 1, "BAD": 1})
        await cached_from(redis, "IBM", "alphavantage", min_seq=2)
        # "Error Message" for BAD: the next provider serves it.
        await cached_from(redis, "BAD", "simulated")

        api.av_mode = limit_answer
        since = time.monotonic()
        seq = (await cached_from(redis, "IBM", "simulated")).seq
        await cached_from(redis, "IBM", "simulated", min_seq=seq + 5)
        # Rate limited: skipped for the pause, not asked again every round.
        assert len(api.asked(AV, since)) <= 2
        state = provider_state(await providers_api(ingestor), "alphavantage")
        assert state["circuit"] == "closed" and state["rateLimitedForSeconds"] > 0
        assert "rate limited" in state["lastError"]
        assert await metric(ingestor, "tickwire_ingestor_provider_requests_total",
                            provider="alphavantage", outcome="rate_limited") >= 1
        assert api.symbols_asked() <= {"IBM", "BAD"}


async def test_alphavantage_empty_quote_fails_over(stack, kafka_bootstrap, redis_url, fake_apis):
    api = FakeApi(av_mode="empty").start()
    fake_apis.append(api)
    ingestor = await start_ingestor(stack, **provider_env(api, "alphavantage,simulated"))
    async with active_symbols(kafka_bootstrap) as activate, redis_at(redis_url) as redis:
        await activate({"NOPE": 1})
        await cached_from(redis, "NOPE", "simulated", min_seq=2)
        state = provider_state(await providers_api(ingestor), "alphavantage")
        # Not knowing a symbol is no sign of ill health.
        assert state["circuit"] == "closed" and state["failures"] == 0
        assert api.asked(AV)


async def test_junk_is_rejected_counted_and_never_published(
        stack, kafka_bootstrap, redis_url, fake_apis):
    api = FakeApi().start()
    fake_apis.append(api)
    ingestor = await start_ingestor(stack, **provider_env(
        api, "twelvedata", TICKWIRE_INGESTOR_BREAKER_FAILURES=1000))
    async with active_symbols(kafka_bootstrap) as activate, redis_at(redis_url) as redis:
        await activate({"AAPL": 1, "MSFT": 1})
        await cached_from(redis, "AAPL", "twelvedata")
        await cached_from(redis, "MSFT", "twelvedata")
        api.td_mode = ["html", "nan", "zero", "truncated", "wrong_shape"]
        await eventually(lambda: _counted(api, 10))
        good = {s: await cached(redis, s) for s in ("AAPL", "MSFT")}
        asked = len(api.asked(TD))
        await eventually(lambda: _counted(api, asked + 10))
        for symbol, tick in good.items():
            assert await cached(redis, symbol) == tick  # nothing published meanwhile
        assert await metric(ingestor, "tickwire_ingestor_rejected_quotes_total",
                            provider="twelvedata", reason="malformed") >= 2
        assert await metric(ingestor, "tickwire_ingestor_rejected_quotes_total",
                            provider="twelvedata", reason="invalid_quote") >= 2
        state = provider_state(await providers_api(ingestor), "twelvedata")
        assert state["lastError"].split(":")[0] in {"malformed", "invalid_quote"}

        api.td_mode = "ok"
        await cached_from(redis, "AAPL", "twelvedata", min_seq=good["AAPL"].seq + 1)


async def _counted(api: FakeApi, n: int) -> bool:
    return len(api.asked(TD)) >= n


async def test_replay_provider_plays_the_sample_and_fails_over_unknown_symbols(
        stack, kafka_bootstrap, redis_url):
    ingestor = await start_ingestor(stack, TICKWIRE_INGESTOR_PROVIDERS="replay,simulated",
                                    TICKWIRE_INGESTOR_REPLAY_SPEED="50")
    async with active_symbols(kafka_bootstrap) as activate, redis_at(redis_url) as redis:
        await activate({"AAPL": 1, "ZZZZ": 1})
        first = await cached_from(redis, "AAPL", "replay")
        later = await cached_from(redis, "AAPL", "replay", min_seq=first.seq + 2)
        assert later.data["price"] != first.data["price"] or later.seq > first.seq
        await cached_from(redis, "ZZZZ", "simulated")
        assert [p["name"] for p in (await providers_api(ingestor))["providers"]] == [
            "replay", "simulated"]
