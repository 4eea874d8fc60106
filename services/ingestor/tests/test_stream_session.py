"""The session aggregate's calendar (New York time, DST, the 09:30 open) and arithmetic,
and conflation's guarantees, as pure logic."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timezone

from tickwire.core.models import StockQuote
from tickwire.ingestor.streams.alpaca import rfc3339
from tickwire.ingestor.streams.base import Trade
from tickwire.ingestor.streams.conflate import BATCH_GRID_SECONDS, Conflator, RateBudget
from tickwire.ingestor.streams.holidays import closed_all_day, early_close, easter, holidays
from tickwire.ingestor.streams.session import Session, market_open, new_york, session_of


def utc(*parts: int) -> float:
    return datetime(*parts, tzinfo=timezone.utc).timestamp()


def test_new_york_time_follows_daylight_saving():
    assert new_york(utc(2024, 1, 10, 15, 0)).hour == 10          # EST, UTC-5
    assert new_york(utc(2024, 7, 10, 15, 0)).hour == 11          # EDT, UTC-4
    assert new_york(utc(2024, 3, 10, 6, 59)).hour == 1           # just before the switch
    assert new_york(utc(2024, 3, 10, 7, 0)).hour == 3            # 2:00 EST became 3:00 EDT
    assert new_york(utc(2024, 11, 3, 5, 59)).hour == 1           # 1:59 EDT
    assert new_york(utc(2024, 11, 3, 6, 0)).hour == 1            # 1:00 EST again


def test_sessions_open_at_half_past_nine_and_the_market_keeps_hours():
    assert session_of(utc(2024, 3, 13, 13, 29)) == "2024-03-12"   # 09:29 EDT: yesterday's
    assert session_of(utc(2024, 3, 13, 13, 30)) == "2024-03-13"   # 09:30 EDT: today's
    assert market_open(utc(2024, 3, 13, 13, 30)) and market_open(utc(2024, 3, 13, 19, 59))
    assert not market_open(utc(2024, 3, 13, 20, 0))               # 16:00
    assert not market_open(utc(2024, 3, 16, 15, 0))               # a Saturday


def test_the_market_keeps_the_exchange_holidays_and_early_closes():
    # The NYSE's published 2024 and 2025 holidays.
    assert sorted(holidays(2024)) == [
        date(2024, 1, 1), date(2024, 1, 15), date(2024, 2, 19), date(2024, 3, 29),
        date(2024, 5, 27), date(2024, 6, 19), date(2024, 7, 4), date(2024, 9, 2),
        date(2024, 11, 28), date(2024, 12, 25)]
    assert sorted(holidays(2025)) == [
        date(2025, 1, 1), date(2025, 1, 20), date(2025, 2, 17), date(2025, 4, 18),
        date(2025, 5, 26), date(2025, 6, 19), date(2025, 7, 4), date(2025, 9, 1),
        date(2025, 11, 27), date(2025, 12, 25)]
    # Weekend rules: Juneteenth 2022 (a Sunday) on Monday; Independence Day 2026 (a
    # Saturday) on Friday; New Year's Day 2022 (a Saturday) not taken on 2021-12-31.
    assert date(2022, 6, 20) in holidays(2022) and date(2026, 7, 3) in holidays(2026)
    assert not closed_all_day(date(2021, 12, 31)) and date(2021, 12, 24) in holidays(2021)
    assert [easter(y) for y in (2024, 2025, 2026)] == [
        date(2024, 3, 31), date(2025, 4, 20), date(2026, 4, 5)]
    assert [d for d in (date(2024, 7, 3), date(2024, 11, 29), date(2024, 12, 24))
            if early_close(d)] == [date(2024, 7, 3), date(2024, 11, 29), date(2024, 12, 24)]
    assert not early_close(date(2026, 7, 3))                      # the holiday itself
    assert not market_open(utc(2024, 11, 28, 16, 0))              # Thanksgiving, 11:00 EST
    assert market_open(utc(2024, 11, 29, 17, 59))                 # 12:59 EST, early close
    assert not market_open(utc(2024, 11, 29, 18, 0))              # 13:00 EST


def quote(price: float = 100.0) -> StockQuote:
    return StockQuote("AAPL", price, 1.0, 1.0, 5_000, 101.0, 98.0, 99.0, 99.0,
                      "2024-03-13T15:00:00.000Z", "twelvedata")


def test_trades_move_the_aggregate_and_a_new_session_starts_from_the_last_price():
    day = utc(2024, 3, 13, 15, 0)
    session = Session.seed(quote(), day)
    session.apply(Trade("AAPL", 102.0, 200, day + 1))
    session.apply(Trade("AAPL", 97.0, 100, day + 0.5))            # late: range and volume only
    assert (session.price, session.high, session.low, session.volume) == (102.0, 102.0, 97.0, 5_300)
    made = session.quote("AAPL", "finnhub-stream")
    assert (made.change, made.previous_close, made.source) == (3.0, 99.0, "finnhub-stream")

    session.apply(Trade("AAPL", 103.0, 0, day + 2, day_volume=9_000))  # the provider's volume
    assert session.volume == 9_000

    next_open = utc(2024, 3, 14, 13, 30)
    session.apply(Trade("AAPL", 104.0, 50, next_open))
    assert session.session == "2024-03-14"
    assert (session.previous_close, session.open, session.high, session.low) == (
        103.0, 104.0, 104.0, 104.0)
    assert session.volume == 50
    assert Session.from_hash({k.encode(): v.encode() for k, v in session.to_hash().items()}) == session


def test_alpaca_times_keep_microseconds_of_nanosecond_stamps():
    assert rfc3339("2024-03-13T15:00:00.123456789Z") == utc(2024, 3, 13, 15, 0) + 0.123456
    assert rfc3339("2024-03-13T15:00:00Z") == utc(2024, 3, 13, 15, 0)


async def test_conflation_publishes_the_newest_state_at_most_once_per_interval():
    state = {"value": 0}
    published: list[int] = []
    gate = asyncio.Event()
    changed = asyncio.Condition()

    async def publish(symbols: list[str]) -> None:
        assert symbols == ["AAPL"]
        published.append(state["value"])
        async with changed:
            changed.notify_all()
        if len(published) == 1:
            await gate.wait()  # the first publish is slow: offers meanwhile fold

    async def until_published(value: int) -> None:
        async with asyncio.timeout(5), changed:
            await changed.wait_for(lambda: published and published[-1] == value)

    conflator = Conflator(1000.0, publish)
    state["value"] = 1
    conflator.offer("AAPL")
    await until_published(1)
    for n in range(2, 6):  # while the first publish is under way
        state["value"] = n
        conflator.offer("AAPL")
        await asyncio.sleep(0)
    gate.set()
    await until_published(5)
    # One publish under way while the rest arrive, one more for all of them: in order, the
    # newest last.
    assert published == [1, 5]
    conflator.drop("AAPL")
    state["value"] = 6
    conflator.offer("AAPL")  # a dropped symbol starts afresh
    await until_published(6)
    assert published == [1, 5, 6]
    await conflator.close()


def test_stream_order_defaults_and_a_named_stream_needs_its_key():
    import pytest
    from pydantic import ValidationError

    from tickwire.ingestor.settings import IngestorSettings

    assert IngestorSettings().stream_order() == ["simulated"]          # offline default
    assert IngestorSettings(providers="simulated").stream_order() == []  # polling was chosen
    assert IngestorSettings(streams="off").stream_order() == []
    keyed = IngestorSettings(finnhub_api_key="k", alpaca_key_id="i", alpaca_secret_key="s")
    assert keyed.stream_order() == ["finnhub", "alpaca"]
    assert IngestorSettings(twelvedata_api_key="k").stream_order() == []  # only when named
    assert IngestorSettings(streams="alpaca,simulated", alpaca_key_id="i",
                            alpaca_secret_key="s").stream_order() == ["alpaca", "simulated"]
    with pytest.raises(ValidationError, match="needs TICKWIRE_INGESTOR_ALPACA_SECRET_KEY"):
        IngestorSettings(streams="alpaca", alpaca_key_id="i")
    with pytest.raises(ValidationError, match="unknown stream"):
        IngestorSettings(streams="polygon")


def test_a_rate_budget_holds_in_every_window_and_never_drifts():
    budget = RateBudget(5, 1.0, 0.1)
    flood = [budget.claim(n * 0.005) for n in range(400)]  # asked every 5 ms for 2 s
    for n, at in enumerate(flood):
        assert sum(1 for other in flood[n:] if other < at + 1.0) <= 5  # any one-second window
        if n:
            assert at - flood[n - 1] >= 0.1 - 1e-9  # half the average spacing, at least
    # Asked right at the rate for a long time: every claim is granted when asked. (Counting
    # when a publish started instead, each start's few ms of delay pushed the next window
    # back, so the delay grew by that much every second.)
    steady = RateBudget(20, 1.0, 0.025)
    asked = [3600.0 + n * 0.05 for n in range(20 * 3600)]
    assert max(steady.claim(at) - at for at in asked) < 1e-6


async def test_a_flooded_symbol_keeps_its_rate():
    import time

    starts: list[float] = []

    async def publish(symbols: list[str]) -> None:
        starts.append(time.monotonic())

    conflator = Conflator(5.0, publish)
    flood_until = time.monotonic() + 1.3
    while time.monotonic() < flood_until:
        conflator.offer("HOT")
        await asyncio.sleep(0.005)
    await conflator.close()
    assert len(starts) >= 2
    # A publish starts on the grid point after it came due, later when the loop is late:
    # the budget holds up to that.
    slack = BATCH_GRID_SECONDS + 0.05
    for n, at in enumerate(starts):
        assert sum(1 for other in starts[n:] if other < at + 1.0 - slack) <= 5
