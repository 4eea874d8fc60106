"""The stream manager in process against real Redis and a fake Finnhub: which symbols
stream, how trades become ticks (seeded session aggregate, conflation, one `seq` with
polling), and when a symbol goes back to polling."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone

from tickwire.core import names
from tickwire.core.events import ActiveSymbolEvent
from tickwire.core.models import StockQuote, iso_from_unix
from tickwire.ingestor.assignments import ActiveSymbols
from tickwire.ingestor.feed import FeedStore
from tickwire.ingestor.lifetimes import KeyLifetimes
from tickwire.ingestor.publisher import TickPublisher
from tickwire.ingestor.streams import StreamManager
from tickwire.ingestor.streams.connection import StreamConnection
from tickwire.ingestor.streams.finnhub import FinnhubAdapter
from tickwire.ingestor.streams.session import Session, SessionStore, session_of

from integration.ingestor_fakes import StatusListener, cached, redis_at
from integration.stream_fakes import FINNHUB, GOOD_KEY, FakeStreams, finnhub_trade
from integration.stream_fakes import fake_streams  # noqa: F401 (a fixture)
from integration.test_stream_clients import until
from integration.wsclient import eventually

# A Wednesday at 15:00 New York: the market is open, so silence counts.
MARKET_HOURS = datetime(2024, 3, 13, 19, 0, tzinfo=timezone.utc).timestamp()


def rest_quote(symbol: str, price: float = 100.0) -> StockQuote:
    return StockQuote(symbol=symbol, price=price, change=1.0, change_percent=1.0,
                      volume=10_000, high=101.0, low=98.0, open=99.0, previous_close=99.0,
                      timestamp=iso_from_unix(time.time()), source="simulated")


class Rig:
    def __init__(self, redis, fakes: FakeStreams, cap: int, freshness: float,
                 max_ticks: float):
        self.active = ActiveSymbols()
        self.publisher = TickPublisher(redis)
        self.manager = StreamManager(self.active, self.publisher, FeedStore(redis),
                                     SessionStore(redis, KeyLifetimes(redis, 300)),
                                     max_ticks, freshness,
                                     wall=lambda: MARKET_HOURS + (time.monotonic() - START))
        self.conn = StreamConnection(FinnhubAdapter(fakes.ws_url(FINNHUB), GOOD_KEY, cap),
                                     self.manager, backoff_seconds=0.05, backoff_max_seconds=0.2)
        self.manager.add(self.conn)
        self.steps = 0  # the manager's completed decision steps
        step = self.manager.step

        async def counted() -> None:
            await step()
            self.steps += 1

        self.manager.step = counted

    async def steps_pass(self, count: int) -> None:
        """Returns once the manager has decided `count` more times."""
        target = self.steps + count
        await until(lambda: self.steps >= target)

    def watch(self, symbols: dict[str, int]) -> None:
        for symbol, subscribers in symbols.items():
            self.active.apply(0, ActiveSymbolEvent(symbol, subscribers > 0, subscribers))


START = time.monotonic()


@contextlib.asynccontextmanager
async def rig(redis_url, fakes, cap=50, freshness=30.0, max_ticks=20.0) -> AsyncIterator[Rig]:
    async with redis_at(redis_url) as redis:
        r = Rig(redis, fakes, cap, freshness, max_ticks)
        task = asyncio.create_task(r.manager.run())
        try:
            yield r
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await r.publisher.aclose()
            await r.manager.sessions.aclose()


async def test_only_watched_symbols_with_a_seed_stream_and_seq_runs_on_from_polling(
        redis_url, fake_streams):
    fakes = FakeStreams().start()
    fake_streams.append(fakes)
    fake = fakes[FINNHUB]
    async with rig(redis_url, fakes) as r, redis_at(redis_url) as redis:
        r.watch({"AAPL": 2, "MSFT": 1})
        # No REST quote yet: nothing to seed from, so nothing streams (polling serves them).
        await r.steps_pass(2)
        assert fake.ever_subscribed() == set() and r.manager.streamed == {}
        polled = await r.publisher.publish(rest_quote("AAPL"))
        await r.publisher.publish(rest_quote("MSFT", 400.0))
        await until(lambda: fake.subscribed() == {"AAPL", "MSFT"})

        await asyncio.to_thread(fakes.trade, FINNHUB, "AAPL", 102.5, 300)
        tick = await until_cached(redis, "AAPL", "finnhub-stream")
        assert (tick.seq, tick.epoch) == (polled.seq + 1, polled.epoch)
        data = tick.data
        assert data["price"] == 102.5 and data["volume"] == 10_300
        assert (data["open"], data["previousClose"], data["low"]) == (99.0, 99.0, 98.0)
        assert data["high"] == 102.5 and data["change"] == 3.5
        assert abs(data["changePercent"] - 3.5 / 99 * 100) < 1e-3

        # The session aggregate is in Redis for a replica that takes over.
        await until_async(lambda: _saved_volume(redis, "AAPL", 10_300))

        # The last watcher leaving unsubscribes upstream; a symbol nobody watches never
        # was subscribed.
        r.watch({"MSFT": 0})
        await until(lambda: fake.subscribed() == {"AAPL"})
        assert fake.ever_subscribed() == {"AAPL", "MSFT"}
        r.watch({"AAPL": 0})
        await until(lambda: fake.open_connections() == 0)


async def test_a_burst_of_trades_is_conflated_to_the_newest_state(redis_url, fake_streams):
    fakes = FakeStreams().start()
    fake_streams.append(fakes)
    async with rig(redis_url, fakes, max_ticks=1.0) as r, redis_at(redis_url) as redis:
        r.watch({"AAPL": 1})
        first = await r.publisher.publish(rest_quote("AAPL"))
        await until(lambda: fakes[FINNHUB].subscribed() == {"AAPL"})
        now = time.time()
        burst = {"type": "trade", "data": [
            finnhub_trade("AAPL", 100.0 + n / 100, 10, now + n / 1000)["data"][0]
            for n in range(1, 31)]}
        await asyncio.to_thread(fakes.junk, FINNHUB, json.dumps(burst))
        tick = await until_cached(redis, "AAPL", "finnhub-stream")
        # 30 trades in one frame: one tick, carrying the newest price and all the volume.
        assert tick.seq == first.seq + 1
        assert tick.data["price"] == 100.3 and tick.data["volume"] == 10_300
        # An out-of-order trade (older than the newest) adds volume, never turns the price back.
        await asyncio.to_thread(fakes.trade, FINNHUB, "AAPL", 90.0, 5, now)
        late = await until_async(lambda: _cached_volume(redis, "AAPL", 10_305))
        assert late.data["price"] == 100.3 and late.data["low"] == 90.0
        # The very next tick: nothing (no stale copy of the burst) was published between.
        assert late.seq == first.seq + 2


async def test_most_watched_symbols_stream_within_the_cap(redis_url, fake_streams):
    fakes = FakeStreams().start()
    fake_streams.append(fakes)
    fake = fakes[FINNHUB]
    async with rig(redis_url, fakes, cap=2) as r:
        for symbol in ("AAA", "BBB", "CCC"):
            await r.publisher.publish(rest_quote(symbol))
        r.watch({"AAA": 3, "BBB": 2, "CCC": 1})
        await until(lambda: fake.subscribed() == {"AAA", "BBB"})
        r.watch({"CCC": 5})
        await until(lambda: fake.subscribed() == {"AAA", "CCC"})
        assert set(r.manager.streamed) == {"AAA", "CCC"}
        assert fake.most_symbols == 2


async def test_a_silent_symbol_goes_back_to_polling_flagged_stale(redis_url, fake_streams):
    fakes = FakeStreams().start()
    fake_streams.append(fakes)
    fake = fakes[FINNHUB]
    async with rig(redis_url, fakes, freshness=1.0) as r, redis_at(redis_url) as redis, \
            StatusListener(redis) as status:
        await r.publisher.publish(rest_quote("AAPL"))
        r.watch({"AAPL": 1})
        await until(lambda: fake.subscribed() == {"AAPL"})
        await until(lambda: fake.subscribed() == set())  # no trade for 1 s, market open
        assert "AAPL" not in r.manager.streamed
        assert await redis.hget(names.feed_key("AAPL"), "stale") == b"1"
        await until(lambda: [m for m in status.of("stale") if m.symbols == ("AAPL",)])
        # After its pause (three freshness windows) it is offered to the stream again.
        await until(lambda: fake.subscribed() == {"AAPL"}, timeout=20)
        await asyncio.to_thread(fakes.trade, FINNHUB, "AAPL", 101.0)
        await until_cached(redis, "AAPL", "finnhub-stream")
        await until(lambda: status.of("recovered"))


async def test_a_symbol_the_provider_refuses_goes_back_to_polling(redis_url, fake_streams):
    fakes = FakeStreams(finnhub={"symbol_limit": 1}).start()
    fake_streams.append(fakes)
    async with rig(redis_url, fakes) as r:
        for symbol in ("AAA", "BBB"):
            await r.publisher.publish(rest_quote(symbol))
        r.watch({"AAA": 2})
        await until(lambda: fakes[FINNHUB].subscribed() == {"AAA"})
        r.watch({"BBB": 1})
        await until(lambda: r.conn.errors == 1)
        await until(lambda: set(r.manager.streamed) == {"AAA"})
        await r.steps_pass(3)  # a few decisions: it is not offered again at once
        assert set(r.manager.streamed) == {"AAA"} and r.conn.held == {"AAA"}


async def test_session_aggregates_round_trip_through_redis(redis_url):
    async with redis_at(redis_url) as redis:
        store = SessionStore(redis, KeyLifetimes(redis, 300))
        yesterday = MARKET_HOURS - 86_400
        session = Session.seed(rest_quote("AAPL"), yesterday)
        await store.save({"AAPL": session}, lambda: {"AAPL"})
        await redis.hset(names.session_key("BAD"), mapping={"session": "x", "open": "y"})
        loaded = await store.load(["AAPL", "NONE", "BAD"])
        assert loaded == {"AAPL": session, "NONE": None, "BAD": None}
        assert 0 < await redis.ttl(names.session_key("AAPL")) <= 5 * 86_400
        assert session.session == session_of(yesterday) != session_of(MARKET_HOURS)
        await store.aclose()


async def test_a_session_saved_around_its_symbols_inactivity_expires_with_its_other_keys(
        redis_url):
    async with redis_at(redis_url) as redis:
        lifetimes = KeyLifetimes(redis, 30)
        store = SessionStore(redis, lifetimes)
        session = Session.seed(rest_quote("AAPL"), MARKET_HOURS)
        # The inactivity was written before the save that creates the key (a demoted
        # symbol's last save): the symbol is no longer owned, so the key gets the short TTL.
        lifetimes.changed("GONE", False)
        await lifetimes.write()
        await store.save({"GONE": session, "KEPT": session}, lambda: {"KEPT"})
        assert 0 < await redis.ttl(names.session_key("GONE")) <= 30
        assert await redis.ttl(names.session_key("KEPT")) > 30
        # The symbol goes inactive while its save is under way: the expiry waits for it.
        expiry: list[asyncio.Task] = []

        def owned_until_now() -> set[str]:
            lifetimes.changed("LATE", False)
            expiry.append(asyncio.ensure_future(lifetimes.write()))
            return {"LATE"}

        await store.save({"LATE": session}, owned_until_now)
        assert await expiry[0] == 1
        assert 0 < await redis.ttl(names.session_key("LATE")) <= 30
        await store.aclose()


async def until_cached(redis, symbol: str, source: str):
    async def check():
        tick = await cached(redis, symbol)
        return tick if tick and tick.data["source"] == source else None
    return await eventually(check, timeout=15, interval=0.02)


async def until_async(check, timeout: float = 15.0):
    return await eventually(check, timeout=timeout, interval=0.05)


async def _saved_volume(redis, symbol: str, volume: int) -> bool:
    return await redis.hget(names.session_key(symbol), "volume") == str(volume).encode()


async def _cached_volume(redis, symbol: str, volume: int):
    tick = await cached(redis, symbol)
    return tick if tick and tick.data["volume"] == volume else None
