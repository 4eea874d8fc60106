"""A local Finnhub trade stream, for trying the real provider path without a key or the
internet: `uv run --frozen python -m bench.fakefinnhub --port 9300`.

It speaks Finnhub's WebSocket protocol (`wss://ws.finnhub.io?token=…`): the client sends
`{"type":"subscribe","symbol":"AAPL"}` / `unsubscribe`; the server sends `{"type":"ping"}`
now and then and `{"type":"trade","data":[{"s","p","t","v","c"}]}` with the trades of
every subscribed symbol, here a random walk at `--trades-per-second` per symbol. Any token
is accepted except `--refuse-token` (answered 401, as Finnhub answers a bad key), and a
connection holds at most `--symbol-limit` symbols (beyond: Finnhub's "Subscribing to too
many symbols" error). Point the ingestor at it with `TICKWIRE_INGESTOR_FINNHUB_WS_URL`
(docs/streams.md shows the whole command). It prints each subscription change.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

from aiohttp import WSMsgType, web

PING_SECONDS = 10.0


class FakeFinnhub:
    def __init__(self, trades_per_second: float, symbol_limit: int, refuse_token: str | None):
        self.step = 1.0 / trades_per_second
        self.symbol_limit = symbol_limit
        self.refuse_token = refuse_token
        self.prices: dict[str, float] = {}
        self.connections: dict[web.WebSocketResponse, set[str]] = {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_token is not None and request.query.get("token") == self.refuse_token:
            return web.Response(status=401, text="Invalid API key")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        symbols = self.connections[ws] = set()
        print(f"connected: {request.remote}", flush=True)
        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    continue
                await self._command(ws, symbols, message.data)
        finally:
            del self.connections[ws]
            print(f"disconnected: {request.remote}", flush=True)
        return ws

    async def _command(self, ws: web.WebSocketResponse, symbols: set[str], text: str) -> None:
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        kind = body.get("type") if isinstance(body, dict) else None
        symbol = body.get("symbol") if isinstance(body, dict) else None
        if kind not in ("subscribe", "unsubscribe") or not isinstance(symbol, str):
            await ws.send_json({"type": "error", "msg": "Unknown message type"})
        elif kind == "unsubscribe":
            symbols.discard(symbol)
            print(f"unsubscribe {symbol} (holding {len(symbols)})", flush=True)
        elif symbol not in symbols and len(symbols) >= self.symbol_limit:
            await ws.send_json({"type": "error", "msg": "Subscribing to too many symbols"})
        else:
            symbols.add(symbol)
            # The same start for a symbol every run: a restarted fake does not jump.
            self.prices.setdefault(symbol, round(random.Random(symbol).uniform(50, 500), 2))
            print(f"subscribe {symbol} (holding {len(symbols)})", flush=True)

    def _trade(self, symbol: str, now_ms: int) -> dict:
        price = self.prices[symbol] = max(0.01, round(
            self.prices[symbol] * (1 + random.gauss(0, 0.0005)), 2))
        return {"s": symbol, "p": price, "t": now_ms,
                "v": random.choice((1, 5, 100, 100, 200, 500, 2000)), "c": ["1"]}

    async def stream(self) -> None:
        next_ping = time.monotonic() + PING_SECONDS
        while True:
            await asyncio.sleep(self.step)
            now_ms = time.time_ns() // 1_000_000
            ping = time.monotonic() >= next_ping
            if ping:
                next_ping += PING_SECONDS
            for ws, symbols in list(self.connections.items()):
                if ws.closed:
                    continue
                if ping:
                    await ws.send_json({"type": "ping"})
                if symbols:
                    trades = [self._trade(symbol, now_ms) for symbol in sorted(symbols)]
                    await ws.send_json({"type": "trade", "data": trades})


async def serve(host: str, port: int, fake: FakeFinnhub) -> None:
    app = web.Application()
    app.router.add_get("/", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"fake Finnhub stream on ws://{host}:{port}", flush=True)
    try:
        await fake.stream()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fakefinnhub",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9300)
    p.add_argument("--trades-per-second", type=float, default=5.0,
                   help="trades per subscribed symbol per second")
    p.add_argument("--symbol-limit", type=int, default=50,
                   help="symbols one connection may hold (Finnhub's free plan: 50)")
    p.add_argument("--refuse-token", default=None,
                   help="a token answered with 401, to watch the ingestor fall back to polling")
    args = p.parse_args(argv)
    if args.trades_per_second <= 0:
        p.error("--trades-per-second must be above 0")
    fake = FakeFinnhub(args.trades_per_second, args.symbol_limit, args.refuse_token)
    try:
        asyncio.run(serve(args.host, args.port, fake))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
