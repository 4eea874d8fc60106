"""Each upstream stream client against a local server speaking its provider's protocol:
subscriptions follow the wanted set, trades decode, and auth failures, symbol limits,
dropped connections, required heartbeats and junk are survived as specified."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from tickwire.ingestor.streams.alpaca import AlpacaAdapter
from tickwire.ingestor.streams.base import Trade
from tickwire.ingestor.streams.connection import StreamConnection
from tickwire.ingestor.streams.finnhub import FinnhubAdapter
from tickwire.ingestor.streams.twelvedata import TwelveDataAdapter

from integration.stream_fakes import (ALPACA, FINNHUB, GOOD_KEY, SECRET, TWELVEDATA,
                                      FakeStreams)
from integration.stream_fakes import fake_streams  # noqa: F401 (a fixture)
from integration.wsclient import eventually


class Sink:
    def __init__(self) -> None:
        self.trades: list[Trade] = []
        self.rejected: list[tuple[list[str], str]] = []

    def on_trades(self, stream: str, trades: list[Trade]) -> None:
        self.trades.extend(trades)

    def on_rejected(self, stream: str, symbols: list[str], reason: str) -> None:
        self.rejected.append((symbols, reason))


async def until(predicate: Callable[[], object], timeout: float = 15.0):
    async def check():
        return predicate()
    return await eventually(check, timeout=timeout, interval=0.02)


@contextlib.asynccontextmanager
async def running(adapter, sink: Sink) -> AsyncIterator[StreamConnection]:
    conn = StreamConnection(adapter, sink, backoff_seconds=0.05, backoff_max_seconds=0.2,
                            auth_retry_seconds=0.3)
    task = asyncio.create_task(conn.run())
    try:
        yield conn
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def adapter_for(fakes: FakeStreams, provider: str, key: str = GOOD_KEY, cap: int = 50,
                heartbeat: float = 10.0):
    if provider == FINNHUB:
        return FinnhubAdapter(fakes.ws_url(FINNHUB), key, cap)
    if provider == ALPACA:
        return AlpacaAdapter(fakes.ws_url(ALPACA), key, SECRET, cap)
    return TwelveDataAdapter(fakes.ws_url(TWELVEDATA), key, cap, heartbeat_seconds=heartbeat)


@pytest.mark.parametrize("provider", [FINNHUB, ALPACA, TWELVEDATA])
async def test_subscriptions_follow_the_wanted_set_and_survive_drops_and_junk(
        fake_streams, provider):
    fakes = FakeStreams().start()
    fake_streams.append(fakes)
    fake, sink = fakes[provider], Sink()
    async with running(adapter_for(fakes, provider), sink) as conn:
        conn.want({"AAPL", "MSFT"}, interested=True)
        await until(lambda: fake.subscribed() == {"AAPL", "MSFT"})
        assert conn.state == "connected"
        await asyncio.to_thread(fakes.trade, provider, "AAPL", 191.25, 300)
        await until(lambda: sink.trades)
        trade = sink.trades[0]
        assert (trade.symbol, trade.price) == ("AAPL", 191.25)
        assert trade.size == (0 if provider == TWELVEDATA else 300)

        # Junk of every kind is counted and dropped; the connection lives on.
        for junk in ("not json", b"\x00\x01", "[1, 2", '{"type": 7}', '[{"T": "t", "S": "AAPL"}]',
                     '{"event": "price", "symbol": "AAPL", "price": "NaN", "timestamp": 1}',
                     '{"type": "trade", "data": [{"s": "AAPL", "p": -1, "t": 1, "v": 1}]}'):
            await asyncio.to_thread(fakes.junk, provider, junk)
        await until(lambda: conn.junk == 7)
        await asyncio.to_thread(fakes.trade, provider, "MSFT", 410.5, 100)
        await until(lambda: any(t.symbol == "MSFT" for t in sink.trades))
        assert fake.connects == 1 and conn.reconnects == 0

        # Fewer wanted: exactly the difference is unsubscribed.
        conn.want({"MSFT"}, interested=True)
        await until(lambda: fake.subscribed() == {"MSFT"})
        assert ("unsubscribe", ("AAPL",)) in fake.log

        # A dropped connection: reconnect, re-authenticate, resubscribe exactly the set.
        conn.want({"MSFT", "NVDA"}, interested=True)
        await until(lambda: fake.subscribed() == {"MSFT", "NVDA"})
        await asyncio.to_thread(fakes.drop, provider)
        await until(lambda: fake.connects == 2 and fake.subscribed() == {"MSFT", "NVDA"})
        assert conn.reconnects == 1
        count = len(sink.trades)
        await asyncio.to_thread(fakes.trade, provider, "NVDA", 120.0, 5)
        await until(lambda: len(sink.trades) > count)
        assert sink.trades[-1].symbol == "NVDA"
        # A trade for a symbol not held is not passed on.
        assert await asyncio.to_thread(fakes.trade, provider, "AAPL", 1.0) == 0

        # Nothing wanted and no interest: the connection closes.
        conn.want(set(), interested=False)
        await until(lambda: fake.open_connections() == 0 and conn.state == "idle")
        assert conn.reconnects == 1
    assert fake.most_connections == 1


@pytest.mark.parametrize("provider", [FINNHUB, ALPACA, TWELVEDATA])
async def test_a_refused_key_hands_everything_back_and_is_retried_later(fake_streams, provider):
    fakes = FakeStreams().start()
    fake_streams.append(fakes)
    fake, sink = fakes[provider], Sink()
    async with running(adapter_for(fakes, provider, key="bad-key"), sink) as conn:
        conn.want({"AAPL"}, interested=True)
        await until(lambda: conn.state == "unauthorized")
        assert conn.room() == 0 and conn.errors >= 1
        await until(lambda: fake.auth_failures >= 2)  # tried again after the long pause
        assert fake.subscribed() == set() and "bad-key" not in str(conn.describe())


@pytest.mark.parametrize("provider", [FINNHUB, ALPACA, TWELVEDATA])
async def test_symbol_limit_errors_hand_the_refused_symbols_back(fake_streams, provider):
    fakes = FakeStreams(**{provider: {"symbol_limit": 2}}).start()
    fake_streams.append(fakes)
    fake, sink = fakes[provider], Sink()
    async with running(adapter_for(fakes, provider), sink) as conn:
        conn.want({"AAPL", "MSFT"}, interested=True)
        await until(lambda: fake.subscribed() == {"AAPL", "MSFT"})
        conn.want({"AAPL", "MSFT", "NVDA"}, interested=True)
        await until(lambda: sink.rejected)
        symbols, reason = sink.rejected[0]
        assert symbols == ["NVDA"] and reason.startswith(provider)
        assert conn.held == {"AAPL", "MSFT"} and conn.errors == 1
        assert fake.subscribed() == {"AAPL", "MSFT"} and fake.most_symbols == 2
        assert conn.state == "connected" and fake.connects == 1
        # Unsubscribed anyway: the provider's set stays ours even when an error names none.
        await until(lambda: ("unsubscribe", ("NVDA",)) in fake.log)


async def test_alpaca_second_connection_of_a_key_is_refused_and_retried(fake_streams):
    fakes = FakeStreams().start()
    fake_streams.append(fakes)
    fake = fakes[ALPACA]
    async with running(adapter_for(fakes, ALPACA), Sink()) as first:
        first.want({"AAPL"}, interested=True)
        await until(lambda: fake.subscribed() == {"AAPL"})
        async with running(adapter_for(fakes, ALPACA), Sink()) as second:
            second.want({"MSFT"}, interested=True)
            await until(lambda: second.reconnects >= 2 and fake.refused >= 2)  # 406, backing off
            assert second.state != "connected" and fake.subscribed() == {"AAPL"}
        first.want(set(), interested=False)
        await until(lambda: fake.open_connections() == 0)


async def test_twelvedata_heartbeats_keep_the_connection_and_without_them_it_drops(fake_streams):
    fakes = FakeStreams(twelvedata={"heartbeat_deadline": 0.8}).start()
    fake_streams.append(fakes)
    fake = fakes[TWELVEDATA]
    async with running(adapter_for(fakes, TWELVEDATA, heartbeat=0.1), Sink()) as conn:
        conn.want({"AAPL"}, interested=True)
        await until(lambda: fake.heartbeats >= 20)  # 2 s: well past the server's deadline
        assert fake.connects == 1 and conn.reconnects == 0 and conn.state == "connected"
        conn.want(set(), interested=False)
        await until(lambda: fake.open_connections() == 0)
    lazy = TwelveDataAdapter(fakes.ws_url(TWELVEDATA), GOOD_KEY, 8, heartbeat_seconds=60)
    async with running(lazy, Sink()) as conn:
        conn.want({"AAPL"}, interested=True)
        await until(lambda: conn.reconnects >= 1 and fake.connects >= 3)
        await until(lambda: fake.subscribed() == {"AAPL"})  # resubscribed after the drop
