"""Fake upstream WebSocket streams (no tests here): Finnhub trades, Alpaca market data v2 and
the Twelve Data price stream, each speaking its provider's real protocol, served from one
aiohttp app on its own thread (ThreadedApp) so it keeps serving while a test blocks.

Routes: `/finnhub` (key in `?token=`), `/alpaca/v2/iex` (key in the auth message),
`/twelvedata/v1/quotes/price` (key in `?apikey=`). Per provider a `Fake` holds the rules
(accepted keys, symbol limit, connection limit, a required heartbeat) and what happened
(connections now and at most, every subscribe / unsubscribe). Tests act through
thread-safe methods: `trade`, `junk`, `drop`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from integration.threaded import ThreadedApp

FINNHUB, ALPACA, TWELVEDATA = "finnhub", "alpaca", "twelvedata"
PATHS = {FINNHUB: "/finnhub", ALPACA: "/alpaca/v2/iex", TWELVEDATA: "/twelvedata/v1/quotes/price"}
GOOD_KEY = "good-key"
SECRET = "good-secret"


@dataclass
class _Conn:
    ws: web.WebSocketResponse
    symbols: set[str] = field(default_factory=set)
    last_heartbeat: float = field(default_factory=time.monotonic)


@dataclass
class Fake:
    """One provider's rules and record."""

    provider: str
    symbol_limit: int = 50
    connection_limit: int = 1           # Alpaca answers 406 beyond it; others just count
    heartbeat_deadline: float | None = None  # Twelve Data: close a connection silent this long
    conns: list[_Conn] = field(default_factory=list)
    connects: int = 0
    auth_failures: int = 0
    refused: int = 0                    # connections over the connection limit
    most_connections: int = 0
    most_symbols: int = 0               # per connection, at any moment
    log: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (action, symbols)
    heartbeats: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def subscribed(self) -> set[str]:
        with self._lock:
            return {s for c in self.conns for s in c.symbols}

    def ever_subscribed(self) -> set[str]:
        with self._lock:
            return {s for action, symbols in self.log if action == "subscribe" for s in symbols}

    def open_connections(self) -> int:
        with self._lock:
            return len(self.conns)

    def _opened(self, conn: _Conn) -> None:
        with self._lock:
            self.conns.append(conn)
            self.connects += 1
            self.most_connections = max(self.most_connections, len(self.conns))

    def _closed(self, conn: _Conn) -> None:
        with self._lock:
            if conn in self.conns:
                self.conns.remove(conn)

    def _record(self, conn: _Conn, action: str, symbols: list[str]) -> None:
        with self._lock:
            self.log.append((action, tuple(symbols)))
            if action == "subscribe":
                conn.symbols.update(symbols)
            else:
                conn.symbols.difference_update(symbols)
            self.most_symbols = max(self.most_symbols, len(conn.symbols))


def finnhub_trade(symbol: str, price: float, size: int, at: float) -> dict:
    return {"type": "trade", "data": [{"s": symbol, "p": price, "t": int(at * 1000), "v": size,
                                       "c": ["1", "12"]}]}


def alpaca_trade(symbol: str, price: float, size: int, at: float) -> list:
    moment = datetime.fromtimestamp(at, tz=timezone.utc)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}123Z"
    return [{"T": "t", "S": symbol, "i": 52983525029461, "x": "V", "p": price, "s": size,
             "t": stamp, "c": ["@"], "z": "C"}]


def twelvedata_price(symbol: str, price: float, day_volume: int, at: float) -> dict:
    return {"event": "price", "symbol": symbol, "currency": "USD", "exchange": "NASDAQ",
            "mic_code": "XNGS", "type": "Common Stock", "timestamp": int(at), "price": price,
            "day_volume": day_volume}


class FakeStreams:
    def __init__(self, **rules: dict[str, Any]):
        self.fakes = {p: Fake(p, **rules.get(p, {})) for p in (FINNHUB, ALPACA, TWELVEDATA)}
        self._server = ThreadedApp(self._app)
        self.url = f"ws://127.0.0.1:{self._server.port}"
        self._loop: asyncio.AbstractEventLoop | None = None

    def __getitem__(self, provider: str) -> Fake:
        return self.fakes[provider]

    def ws_url(self, provider: str) -> str:
        return f"{self.url}{PATHS[provider]}"

    def start(self) -> FakeStreams:
        self._server.start()
        self._loop = self._server._loop
        return self

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(10)
        self._server.stop()

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(PATHS[FINNHUB], self._finnhub)
        app.router.add_get(PATHS[ALPACA], self._alpaca)
        app.router.add_get(PATHS[TWELVEDATA], self._twelvedata)
        return app

    # -- what tests do (from any thread) --------------------------------------------------

    def _call(self, coro) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def trade(self, provider: str, symbol: str, price: float, size: int = 100,
              at: float | None = None) -> int:
        """Send one trade to every connection holding `symbol`; returns how many got it."""
        at = time.time() if at is None else at
        frame = {FINNHUB: finnhub_trade, ALPACA: alpaca_trade,
                 TWELVEDATA: twelvedata_price}[provider](symbol, price, size, at)
        return self._call(self._send(provider, json.dumps(frame), symbol))

    def junk(self, provider: str, text: str | bytes) -> None:
        self._call(self._send(provider, text, None))

    def drop(self, provider: str) -> None:
        """Close every connection of the provider, as a network fault would."""
        self._call(self._close_all(provider))

    async def _send(self, provider: str, payload: str | bytes, symbol: str | None) -> int:
        sent = 0
        for conn in list(self.fakes[provider].conns):
            if (symbol is None or symbol in conn.symbols) and not conn.ws.closed:
                if isinstance(payload, bytes):
                    await conn.ws.send_bytes(payload)
                else:
                    await conn.ws.send_str(payload)
                sent += 1
        return sent

    async def _close_all(self, provider: str | None = None) -> None:
        for fake in self.fakes.values():
            if provider in (None, fake.provider):
                for conn in list(fake.conns):
                    await conn.ws.close()

    # -- the providers ----------------------------------------------------------------------

    async def _open(self, request: web.Request, fake: Fake) -> tuple[web.WebSocketResponse, _Conn]:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = _Conn(ws)
        fake._opened(conn)
        return ws, conn

    async def _finnhub(self, request: web.Request) -> web.StreamResponse:
        fake = self.fakes[FINNHUB]
        if request.query.get("token") != GOOD_KEY:
            fake.auth_failures += 1
            return web.Response(status=401, text="Invalid API key")
        ws, conn = await self._open(request, fake)
        try:
            async for message in ws:
                body = _json(message)
                if not isinstance(body, dict) or body.get("type") not in ("subscribe",
                                                                           "unsubscribe"):
                    await ws.send_json({"type": "error", "msg": "Unknown message type"})
                    continue
                symbol = body.get("symbol")
                if body["type"] == "subscribe" and symbol not in conn.symbols and \
                        len(conn.symbols) >= fake.symbol_limit:
                    await ws.send_json({"type": "error",
                                        "msg": "Subscribing to too many symbols"})
                    continue
                fake._record(conn, body["type"], [symbol])
        finally:
            fake._closed(conn)
        return ws

    async def _alpaca(self, request: web.Request) -> web.StreamResponse:
        fake = self.fakes[ALPACA]
        if fake.open_connections() >= fake.connection_limit:
            fake.refused += 1
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            await ws.send_json([{"T": "error", "code": 406, "msg": "connection limit exceeded"}])
            await ws.close()
            return ws
        ws, conn = await self._open(request, fake)
        try:
            await ws.send_json([{"T": "success", "msg": "connected"}])
            auth = _json(await ws.receive())
            if not (isinstance(auth, dict) and auth.get("action") == "auth"
                    and auth.get("key") == GOOD_KEY and auth.get("secret") == SECRET):
                fake.auth_failures += 1
                await ws.send_json([{"T": "error", "code": 402, "msg": "auth failed"}])
                await ws.close()
                return ws
            await ws.send_json([{"T": "success", "msg": "authenticated"}])
            async for message in ws:
                body = _json(message)
                action = body.get("action") if isinstance(body, dict) else None
                trades = body.get("trades", []) if isinstance(body, dict) else None
                if action not in ("subscribe", "unsubscribe") or not isinstance(trades, list):
                    await ws.send_json([{"T": "error", "code": 400, "msg": "invalid syntax"}])
                    continue
                if action == "subscribe" and len(conn.symbols | set(trades)) > fake.symbol_limit:
                    await ws.send_json([{"T": "error", "code": 405,
                                         "msg": "symbol limit exceeded"}])
                    continue
                fake._record(conn, action, trades)
                await ws.send_json([{"T": "subscription", "trades": sorted(conn.symbols),
                                     "quotes": [], "bars": [], "updatedBars": [],
                                     "dailyBars": [], "statuses": [], "lulds": [],
                                     "corrections": [], "cancelErrors": []}])
        finally:
            fake._closed(conn)
        return ws

    async def _twelvedata(self, request: web.Request) -> web.StreamResponse:
        fake = self.fakes[TWELVEDATA]
        if request.query.get("apikey") != GOOD_KEY:
            fake.auth_failures += 1
            return web.Response(status=401, text="apikey parameter is incorrect")
        ws, conn = await self._open(request, fake)
        watchdog = asyncio.create_task(self._heartbeat_watchdog(fake, conn))
        try:
            async for message in ws:
                body = _json(message)
                action = body.get("action") if isinstance(body, dict) else None
                if action == "heartbeat":
                    conn.last_heartbeat = time.monotonic()
                    fake.heartbeats += 1
                    await ws.send_json({"event": "heartbeat", "status": "ok"})
                    continue
                raw = (body.get("params") or {}).get("symbols") if isinstance(body, dict) else None
                if action not in ("subscribe", "unsubscribe") or not isinstance(raw, str):
                    await ws.send_json({"event": "subscribe-status", "status": "error",
                                        "messages": ["invalid request"]})
                    continue
                symbols = [s for s in raw.split(",") if s]
                if action == "unsubscribe":
                    fake._record(conn, action, symbols)
                    await ws.send_json({"event": "unsubscribe-status", "status": "ok",
                                        "success": symbols, "fails": None})
                    continue
                room = max(0, fake.symbol_limit - len(conn.symbols))
                fresh = [s for s in symbols if s not in conn.symbols]
                ok, fails = fresh[:room], fresh[room:]
                fake._record(conn, action, ok)
                await ws.send_json({
                    "event": "subscribe-status", "status": "error" if fails else "ok",
                    "success": [{"symbol": s, "exchange": "NASDAQ", "mic_code": "XNGS",
                                 "country": "United States", "type": "Common Stock"} for s in ok],
                    "fails": [{"symbol": s} for s in fails] or None})
        finally:
            watchdog.cancel()
            fake._closed(conn)
        return ws

    @staticmethod
    async def _heartbeat_watchdog(fake: Fake, conn: _Conn) -> None:
        if fake.heartbeat_deadline is None:
            return
        while not conn.ws.closed:
            await asyncio.sleep(fake.heartbeat_deadline / 4)
            if time.monotonic() - conn.last_heartbeat > fake.heartbeat_deadline:
                await conn.ws.close(message=b"no heartbeat")
                return


def _json(message) -> Any:
    if message.type is not WSMsgType.TEXT:
        return None
    try:
        return json.loads(message.data)
    except ValueError:
        return None


@pytest.fixture
def fake_streams() -> Iterator[list[FakeStreams]]:
    """Start with `fake_streams.append(FakeStreams(...).start())`; all are stopped."""
    servers: list[FakeStreams] = []
    yield servers
    for server in servers:
        server.stop()


def stream_env(fakes: FakeStreams, streams: str, providers: str = "simulated", **extra) -> dict:
    """Ingestor settings pointing the named streams at `fakes`, with good keys; polling
    through `providers` (offline by default: the Twelve Data key must not reach the network)."""
    return {
        "TICKWIRE_INGESTOR_STREAMS": streams,
        "TICKWIRE_INGESTOR_PROVIDERS": providers,
        "TICKWIRE_INGESTOR_FINNHUB_API_KEY": GOOD_KEY,
        "TICKWIRE_INGESTOR_FINNHUB_WS_URL": fakes.ws_url(FINNHUB),
        "TICKWIRE_INGESTOR_ALPACA_KEY_ID": GOOD_KEY,
        "TICKWIRE_INGESTOR_ALPACA_SECRET_KEY": SECRET,
        "TICKWIRE_INGESTOR_ALPACA_WS_URL": fakes.ws_url(ALPACA),
        "TICKWIRE_INGESTOR_TWELVEDATA_WS_URL": fakes.ws_url(TWELVEDATA),
        "TICKWIRE_INGESTOR_TWELVEDATA_API_KEY": GOOD_KEY,
        **{key: str(value) for key, value in extra.items()},
    }
