"""Shared pieces of the ingestor tests (no tests here): fake Alpha Vantage and Twelve Data
servers that answer in the providers' real formats, and helpers to drive an ingestor.

A FakeApi serves both APIs (`/query` as Alpha Vantage, `/quote` as Twelve Data) from its own
thread and event loop, so it keeps answering while a test blocks to start a process.
Behaviour is switched per API with `av_mode` / `td_mode` (a mode or a list cycled per
request); every request is logged with the symbols it asked for.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from tickwire.core import names
from tickwire.core.codecs import decode_msgpack, decode_tick
from tickwire.core.eventlog import event_producer
from tickwire.core.events import ActiveSymbolEvent
from tickwire.core.models import FeedStatus, Tick

from integration.threaded import ThreadedApp
from integration.wsclient import eventually, get_json

AV, TD = "alphavantage", "twelvedata"


@dataclass
class Request:
    api: str
    symbols: tuple[str, ...]
    at: float
    answer: str


@dataclass
class FakeApi:
    """Modes — Alpha Vantage: ok, note, information, error_message, empty, http_503, html.
    Twelve Data: ok, rate_limited, error_401, http_503, html, nan, zero, truncated,
    wrong_shape, slow. `av_unknown` / `td_unknown` symbols get that provider's "no such
    symbol" answer; `flat` symbols keep one price (others move by a cent per request)."""

    av_mode: str | list[str] = "ok"
    td_mode: str | list[str] = "ok"
    av_unknown: set[str] = field(default_factory=set)
    td_unknown: set[str] = field(default_factory=set)
    flat: set[str] = field(default_factory=set)
    slow_seconds: float = 3.0
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server = ThreadedApp(self._app)
        self.port, self.url = self._server.port, self._server.url
        self._counters: dict[str, itertools.count] = {}
        self._cycles: dict[str, tuple[object, Iterator[str]]] = {}

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> FakeApi:
        self._server.start()
        return self

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/query", self._alphavantage)
        app.router.add_get("/quote", self._twelvedata)
        return app

    def stop(self) -> None:
        self._server.stop()

    # -- what tests read -----------------------------------------------------------------

    def asked(self, api: str | None = None, since: float = 0.0) -> list[Request]:
        return [r for r in list(self.requests) if (api is None or r.api == api) and r.at >= since]

    def symbols_asked(self, api: str | None = None, since: float = 0.0) -> set[str]:
        return {s for r in self.asked(api, since) for s in r.symbols}

    # -- answers ---------------------------------------------------------------------------

    def _mode(self, api: str) -> str:
        mode = self.av_mode if api == AV else self.td_mode
        if isinstance(mode, str):
            return mode
        source, cycle = self._cycles.get(api, (None, None))
        if source is not mode:
            cycle = itertools.cycle(mode)
            self._cycles[api] = (mode, cycle)
        return next(cycle)

    def _price(self, symbol: str) -> float:
        if symbol in self.flat:
            return 100.0
        n = next(self._counters.setdefault(symbol, itertools.count()))
        return round(100.0 + 0.01 * n, 2)

    def _log(self, api: str, symbols: list[str], answer: str) -> None:
        self.requests.append(Request(api, tuple(symbols), time.monotonic(), answer))

    async def _alphavantage(self, request: web.Request) -> web.Response:
        assert request.query["function"] == "GLOBAL_QUOTE" and request.query["apikey"]
        symbol = request.query["symbol"]
        mode = self._mode(AV)
        self._log(AV, [symbol], mode)
        if mode == "http_503":
            return web.Response(status=503, text="Service Unavailable")
        if mode == "html":
            return web.Response(text="<html><body>Bad Gateway</body></html>",
                                content_type="text/html")
        if mode == "note":
            return web.json_response({"Note": "Thank you for using Alpha Vantage! Our standard "
                                      "API call frequency is 5 calls per minute and 500 calls "
                                      "per day."})
        if mode == "information":
            return web.json_response({"Information": "Thank you for using Alpha Vantage! This is "
                                      "a premium endpoint / you have reached the rate limit."})
        if mode == "error_message" or symbol in self.av_unknown and mode == "ok":
            return web.json_response({"Error Message": "Invalid API call. Please retry or visit "
                                      "the documentation (https://www.alphavantage.co/"
                                      "documentation/) for GLOBAL_QUOTE."})
        if mode == "empty":
            return web.json_response({"Global Quote": {}})
        price = self._price(symbol)
        return web.json_response({"Global Quote": {
            "01. symbol": symbol, "02. open": "99.5000", "03. high": f"{max(price, 101):.4f}",
            "04. low": "99.0000", "05. price": f"{price:.4f}", "06. volume": "1234567",
            "07. latest trading day": "2024-03-08", "08. previous close": "99.8000",
            "09. change": f"{price - 99.8:.4f}", "10. change percent": f"{(price - 99.8) / 0.998:.4f}%",
        }})

    def _td_quote(self, symbol: str, close: str | None = None) -> dict:
        price = self._price(symbol)
        return {"symbol": symbol, "name": f"{symbol} Corp", "exchange": "NASDAQ",
                "mic_code": "XNGS", "currency": "USD", "datetime": "2024-03-08",
                "timestamp": 1709904600, "open": "99.50", "high": f"{max(price, 101):.2f}",
                "low": "99.00", "close": close or f"{price:.2f}", "volume": "7654321",
                "previous_close": "99.80", "change": f"{price - 99.8:.2f}",
                "percent_change": f"{(price - 99.8) / 0.998:.5f}", "average_volume": "6000000",
                "is_market_open": True,
                "fifty_two_week": {"low": "80.00", "high": "120.00"}}

    async def _twelvedata(self, request: web.Request) -> web.Response:
        assert request.query["apikey"]
        symbols = request.query["symbol"].split(",")
        mode = self._mode(TD)
        self._log(TD, symbols, mode)
        if mode == "slow":
            await asyncio.sleep(self.slow_seconds)
        if mode == "http_503":
            return web.Response(status=503, text="upstream unavailable")
        if mode == "html":
            return web.Response(text="<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1>"
                                     "</body></html>", content_type="text/html")
        if mode == "truncated":
            return web.Response(text='{"close": "101.', content_type="application/json")
        if mode == "rate_limited":
            return web.json_response({"code": 429, "message": "You have run out of API credits "
                                      "for the current minute. 9 API credits were used, with "
                                      "the current limit being 8.", "status": "error"})
        if mode == "error_401":
            return web.json_response({"code": 401, "message": "**apikey** parameter is incorrect "
                                      "or not specified.", "status": "error"})
        close = {"nan": "NaN", "zero": "0.00000"}.get(mode)

        def entry(symbol: str) -> dict:
            if symbol in self.td_unknown:
                return {"code": 404, "message": f"**symbol** not found: {symbol}. Please specify "
                        "it correctly according to API Documentation.", "status": "error",
                        "meta": {"symbol": symbol, "interval": "", "exchange": ""}}
            return self._td_quote(symbol, close)

        if mode == "wrong_shape":  # a batch answered with one quote, one with a time series
            return web.json_response(entry(symbols[0]) if len(symbols) > 1 else
                                     {"meta": {"symbol": symbols[0]}, "values": [],
                                      "status": "ok"})
        if len(symbols) == 1:
            return web.json_response(entry(symbols[0]))
        return web.json_response({symbol: entry(symbol) for symbol in symbols})


@pytest.fixture
def fake_apis() -> Iterator[list[FakeApi]]:
    """Start FakeApi servers with `fake_apis.append(FakeApi(...).start())`; all are stopped."""
    apis: list[FakeApi] = []
    yield apis
    for api in apis:
        api.stop()


def provider_env(api: FakeApi, providers: str = "twelvedata,alphavantage", **extra) -> dict:
    """Ingestor settings pointing both HTTP providers at `api`, without rate limits (per
    minute or per day)."""
    return {
        "TICKWIRE_INGESTOR_PROVIDERS": providers,
        "TICKWIRE_INGESTOR_TWELVEDATA_BASE_URL": api.url,
        "TICKWIRE_INGESTOR_TWELVEDATA_API_KEY": "test-key",
        "TICKWIRE_INGESTOR_ALPHAVANTAGE_BASE_URL": api.url,
        "TICKWIRE_INGESTOR_ALPHAVANTAGE_API_KEY": "test-key",
        "TICKWIRE_INGESTOR_TWELVEDATA_CREDITS_PER_MINUTE": "0",
        "TICKWIRE_INGESTOR_ALPHAVANTAGE_REQUESTS_PER_MINUTE": "0",
        "TICKWIRE_INGESTOR_TWELVEDATA_CREDITS_PER_DAY": "0",
        "TICKWIRE_INGESTOR_ALPHAVANTAGE_REQUESTS_PER_DAY": "0",
        "TICKWIRE_INGESTOR_REQUEST_TIMEOUT_SECONDS": "1",
        "TICKWIRE_INGESTOR_RETRY_BACKOFF_SECONDS": "0.05",
        "TICKWIRE_INGESTOR_RETRY_BACKOFF_MAX_SECONDS": "0.2",
        **{key: str(value) for key, value in extra.items()},
    }


async def start_ingestor(stack, name: str = "ingestor", **env: str):
    """stack.ingestor without blocking this test's event loop."""
    return await asyncio.to_thread(stack.ingestor, name, **env)


@asynccontextmanager
async def active_symbols(bootstrap: str) -> AsyncIterator:
    """`await activate({"AAPL": 3, "MSFT": 0})`: publish the registry's active-symbol events
    (subscribers > 0: active, 0: inactive) to the compacted topic the ingestors consume."""
    producer = event_producer(bootstrap, "ingestor-tests")
    await producer.start()

    async def activate(symbols: dict[str, int]) -> None:
        for symbol, subscribers in symbols.items():
            event = ActiveSymbolEvent(symbol, subscribers > 0, subscribers)
            await producer.send_and_wait(names.ACTIVE_SYMBOLS_TOPIC, event.encode(),
                                         key=event.key())

    try:
        yield activate
    finally:
        await producer.stop()


@asynccontextmanager
async def redis_at(url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()


async def cached(redis: aioredis.Redis, symbol: str) -> Tick | None:
    payload = await redis.get(names.quote_key(symbol))
    return decode_tick(payload) if payload else None


async def cached_from(redis: aioredis.Redis, symbol: str, source: str, min_seq: int = 1):
    """Wait until the cached tick of `symbol` came from `source` with seq >= min_seq."""
    async def check():
        tick = await cached(redis, symbol)
        return tick if tick and tick.data["source"] == source and tick.seq >= min_seq else None
    return await eventually(check, timeout=30)


async def providers_api(service) -> dict:
    status, body, _ = await get_json(f"{service.url}/api/providers")
    assert status == 200, body
    return body


def provider_state(body: dict, name: str) -> dict:
    return next(p for p in body["providers"] if p["name"] == name)


async def metric(service, name: str, **labels: str) -> float | None:
    """The value of one sample on the service's /metrics (None when absent)."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{service.url}/metrics") as response:
            text = await response.text()
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        sample, value = line.rsplit(" ", 1)
        metric_name, _, label_text = sample.partition("{")
        found = ",".join(sorted(label_text.rstrip("}").split(","))) if label_text else ""
        if metric_name == name and found == wanted:
            return float(value)
    return None


class StatusListener:
    """Collects FeedStatus messages from market-data:status."""

    def __init__(self, redis: aioredis.Redis):
        self._pubsub = redis.pubsub(ignore_subscribe_messages=True)
        self.messages: list[FeedStatus] = []
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> StatusListener:
        await self._pubsub.subscribe(names.STATUS_CHANNEL)
        self._task = asyncio.create_task(self._listen())
        return self

    async def _listen(self) -> None:
        while True:
            message = await self._pubsub.get_message(timeout=1.0)
            if message and message["type"] == "message":
                self.messages.append(FeedStatus.from_wire(decode_msgpack(message["data"])))

    async def __aexit__(self, *_) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        await self._pubsub.aclose()

    def of(self, state: str) -> list[FeedStatus]:
        return [m for m in self.messages if str(m.state) == state]
