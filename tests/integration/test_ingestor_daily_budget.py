"""Daily provider quotas (issue #17) against real Redis: shared by replicas, reset at UTC
midnight (an injected clock crosses it), spent on the most-watched symbols first, and a
spent provider is not asked again while the next one in the chain serves its symbols."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from tickwire.core import names
from tickwire.ingestor.budget import ProviderBudget
from tickwire.ingestor.daybudget import DAY, DailyBudget
from tickwire.ingestor.ratelimit import RateBudget

from integration.ingestor_fakes import (AV, TD, FakeApi, active_symbols, cached, cached_from,
                                        metric, provider_env, provider_state, providers_api,
                                        redis_at, start_ingestor)
from integration.ingestor_fakes import fake_apis  # noqa: F401 (a fixture)
from integration.test_ingestor_resilience import _both_poll
from integration.wsclient import eventually

NOON = 20_000 * DAY + DAY / 2  # a UTC noon


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_replicas_share_one_day_and_a_new_utc_day_starts_afresh(redis_url):
    clock, lagging = Clock(NOON), Clock(NOON - 60)  # the second replica's clock is behind
    async with redis_at(redis_url) as a, redis_at(redis_url) as b:
        one = DailyBudget(a, "alphavantage", 25, clock=clock)
        two = DailyBudget(b, "alphavantage", 25, clock=lagging)
        grants = await asyncio.gather(*(budget.take(2) for budget in (one, two) * 10))
        assert sum(granted for granted, _ in grants) == 25  # 40 asked, exactly the cap given
        assert (await one.state()).left == 0 and one.spent_until == 20_001 * DAY
        assert await redis_at_key_spent(a) == 25

        # Midnight (UTC) on the first replica's clock: the day starts afresh, for both.
        clock.now = 20_001 * DAY + 1
        assert one.spent_until is None
        assert await one.take(3) == (3, 20_001)
        # The lagging replica still thinks it is yesterday: it counts on the new day, and
        # cannot reopen yesterday's (its refund of yesterday's units changes nothing).
        lagging.now = 20_001 * DAY - 30
        two = DailyBudget(b, "alphavantage", 25, clock=lagging)
        assert await two.take(1) == (1, 20_001)
        await two.refund(5, 20_000)
        state = await one.state()
        assert (state.spent, state.left, state.resets_at) == (4, 21, 20_002 * DAY)
        await one.refund(1, 20_001)
        assert (await one.state()).spent == 3
        assert 0 < await a.ttl(names.day_budget_key("alphavantage")) <= 2 * DAY


async def redis_at_key_spent(redis) -> int:
    return int(await redis.hget(names.day_budget_key("alphavantage"), "spent"))


async def test_what_the_minute_bucket_refuses_is_given_back_to_the_day(redis_url):
    async with redis_at(redis_url) as redis:
        day = DailyBudget(redis, "twelvedata", 800, unit_cost=2, clock=Clock(NOON))
        budget = ProviderBudget(RateBudget(redis, "twelvedata", 8, unit_cost=2), day)
        assert await budget.take(10) == 4  # 8 credits a minute at 2 a symbol
        assert await budget.take(10) == 0  # the bucket is empty: the day pays nothing
        described = await budget.describe()
        assert described["perDay"] == 800 and described["spentToday"] == 8
        assert described["leftToday"] == 792 and described["resetsAt"] == "2024-10-05T00:00:00.000Z"
        assert described["perMinute"] == 8 and described["costPerSymbol"] == 2
        unlimited = ProviderBudget(RateBudget(redis, "simulated", 0), DailyBudget(redis, "simulated", 0))
        assert not unlimited.limited and await unlimited.take(10_000) == 10_000
        assert await unlimited.describe() is None


def next_utc_midnight() -> str:
    today = datetime.now(timezone.utc).date()
    return datetime.fromordinal(today.toordinal() + 1).strftime("%Y-%m-%dT00:00:00.000Z")


async def test_a_spent_daily_quota_fails_over_and_is_shared_by_two_replicas(
        stack, kafka_bootstrap, redis_url, fake_apis):  # noqa: F811
    api = FakeApi().start()
    fake_apis.append(api)
    # Twelve Data first, with 6 credits a day at 2 a symbol; Alpha Vantage next, unlimited.
    env = provider_env(api, "twelvedata,alphavantage",
                       TICKWIRE_INGESTOR_TWELVEDATA_CREDITS_PER_DAY=6,
                       TICKWIRE_INGESTOR_TWELVEDATA_CREDITS_PER_SYMBOL=2)
    first = await start_ingestor(stack, "ingestor-1", **env)
    subscribers = {"HOT": 90, "WARM": 40, "MID": 12, "COLD1": 1, "COLD2": 1, "COLD3": 1}
    async with active_symbols(kafka_bootstrap) as activate, redis_at(redis_url) as redis:
        await activate(subscribers)
        for symbol in subscribers:
            await cached(redis, symbol) or await eventually(lambda s=symbol: cached(redis, s))
        # Credits for three symbols a day: the three most-watched symbols got them.
        assert api.symbols_asked(TD) == {"HOT", "WARM", "MID"}
        budget = provider_state(await providers_api(first), "twelvedata")["budget"]
        assert (budget["perDay"], budget["spentToday"], budget["leftToday"]) == (6, 6, 0)
        assert budget["resetsAt"] == next_utc_midnight()

        # A second replica shares the spent day: it takes symbols over but never asks
        # Twelve Data; every symbol keeps being served by the next provider, Alpha Vantage.
        second = await start_ingestor(stack, "ingestor-2", **env)
        await eventually(lambda: _both_poll(first, second, set(subscribers)), timeout=40)
        for symbol in subscribers:
            tick = await cached(redis, symbol)
            await cached_from(redis, symbol, "alphavantage", min_seq=tick.seq + 2)
        assert sum(len(r.symbols) for r in api.asked(TD)) == 3  # the day's credits, no more
        assert api.symbols_asked(AV) >= set(subscribers)
        budget = provider_state(await providers_api(second), "twelvedata")["budget"]
        assert (budget["spentToday"], budget["leftToday"]) == (6, 0)
        assert await metric(second, "tickwire_ingestor_daily_budget_left",
                            provider="twelvedata") == 0
