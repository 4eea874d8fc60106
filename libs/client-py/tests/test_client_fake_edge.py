"""The SDK against a scripted local edge (aiohttp): replay order, retryAfterMs, ordering."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp import web

from tickwire.client import ClientConfig, ConnectionState, TickwireClient, Update


def quote(symbol: str, price: float) -> dict[str, Any]:
    return {"symbol": symbol, "price": price, "change": 1.0, "changePercent": 0.5, "volume": 10,
            "high": price, "low": price, "open": price, "previousClose": price - 1,
            "timestamp": "2024-01-10T10:30:00.000Z", "source": "simulated"}


class FakeEdge:
    """Records every client action per connection; the test decides what to send."""

    def __init__(self) -> None:
        self.connections: list[list[dict[str, Any]]] = []
        self.sockets: list[web.WebSocketResponse] = []
        self.opened = asyncio.Event()
        self.rest_calls: list[str] = []
        self.tokens: list[str | None] = []  # the Authorization header of every request
        self.runner: web.AppRunner | None = None
        self.port = 0
        # Send an update every 20 ms and never read: the client's close frame goes unanswered.
        # The 20 ms is the peer's cadence under test, not a wait: aiohttp's close() reads
        # on while frames keep coming (a flood instead ends it another way).
        self.deaf_chatter = False
        self.stopping = False

    async def start(self) -> FakeEdge:
        app = web.Application()
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/api/quotes/{symbol}", self._quote)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        assert self.runner is not None
        self.stopping = True
        await self.runner.cleanup()

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        self.tokens.append(request.headers.get("Authorization"))
        ws = web.WebSocketResponse(protocols=("tickwire.v1.json",))
        await ws.prepare(request)
        actions: list[dict[str, Any]] = []
        self.connections.append(actions)
        self.sockets.append(ws)
        await ws.send_json({"type": "connected", "clientId": "c", "edgeId": "fake", "timestamp": "t"})
        self.opened.set()
        if self.deaf_chatter:
            update = {"type": "price_update", "symbol": "AAPL", "data": quote("AAPL", 1.0),
                      "timestamp": "t"}
            while not self.stopping and request.transport is not None \
                    and not request.transport.is_closing():
                await ws.send_json(update)
                await asyncio.sleep(0.02)
            return ws
        async for message in ws:
            action = message.json()
            if action.get("action") == "ping":
                await ws.send_json({"type": "pong", "timestamp": action["timestamp"]})
            else:
                actions.append(action)
        return ws

    async def _quote(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"]
        self.rest_calls.append(symbol)
        self.tokens.append(request.headers.get("Authorization"))
        return web.json_response({**quote(symbol, 300.0), "seq": 99, "epoch": "e1",
                                  "stale": False, "ageMs": 3})

    async def wait_open(self, count: int, timeout: float = 10) -> web.WebSocketResponse:
        deadline = time.monotonic() + timeout
        while len(self.sockets) < count:
            assert time.monotonic() < deadline, f"{len(self.sockets)}/{count} connections"
            await asyncio.sleep(0.02)
        return self.sockets[count - 1]


async def until(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def edge():
    fake = await FakeEdge().start()
    yield fake
    await fake.stop()


def config(edge: FakeEdge, **overrides: Any) -> ClientConfig:
    settings: dict[str, Any] = {"wire_format": "json", "reconnect_interval": 0.05, **overrides}
    return ClientConfig(url=f"ws://127.0.0.1:{edge.port}/ws", **settings)


async def test_resubscribes_then_replays_offline_actions_in_order(edge):
    # The top of each jitter range: the retry comes 0.5 s after the loss, well after the
    # offline actions below.
    client = TickwireClient(config(edge, reconnect_interval=0.5), uniform=lambda lo, hi: hi)
    await client.subscribe(["AAPL"])  # before connect: queued
    await client.connect()
    await until(lambda: edge.connections and edge.connections[0])
    assert edge.connections[0] == [{"action": "subscribe", "symbols": ["AAPL"]}]

    await edge.sockets[0].close()
    await until(lambda: client.state is not ConnectionState.OPEN)
    await client.subscribe(["MSFT"])
    await client.unsubscribe(["AAPL"])
    assert len(edge.sockets) == 1
    await edge.wait_open(2)
    await until(lambda: len(edge.connections[1]) == 3)
    assert edge.connections[1] == [
        {"action": "subscribe", "symbols": ["AAPL"]},
        {"action": "subscribe", "symbols": ["MSFT"]},
        {"action": "unsubscribe", "symbols": ["AAPL"]},
    ]
    await client.disconnect()


async def test_honours_retry_after_from_a_draining_edge(edge):
    client = TickwireClient(config(edge))
    await client.connect()
    ws = await edge.wait_open(1)
    await ws.send_json({"type": "reconnect", "reason": "draining", "retryAfterMs": 800})
    closed_at = time.monotonic()
    await ws.close(code=1001)
    await edge.wait_open(2)
    assert time.monotonic() - closed_at >= 0.75
    await client.disconnect()


async def test_drops_stale_updates_and_refetches_on_a_gap(edge):
    client = TickwireClient(config(edge))
    updates = client.updates()
    await client.subscribe(["AAPL"])
    await client.connect()
    ws = await edge.wait_open(1)
    for seq, snapshot in ((5, True), (5, False), (4, False), (6, False), (9, False)):
        message = {"type": "price_update", "symbol": "AAPL", "data": quote("AAPL", 100 + seq),
                   "seq": seq, "epoch": "e1", "timestamp": "t"}
        if snapshot:
            message["snapshot"] = True
        await ws.send_json(message)
    got: list[Update] = [await asyncio.wait_for(anext(updates), 5) for _ in range(4)]
    assert [(u.seq, u.snapshot, u.real_time) for u in got] == [
        (5, True, True), (6, False, True), (9, False, True), (99, True, False)]
    assert edge.rest_calls == ["AAPL"] and client.metrics().gaps_detected == 1
    await until(lambda: client.latency > 0)
    await client.disconnect()


async def test_without_auto_reconnect_a_failed_connect_raises():
    from tickwire.client import ConnectionFailed

    client = TickwireClient(ClientConfig(url="ws://127.0.0.1:9/ws", enable_auto_reconnect=False,
                                         connect_timeout=2))
    with pytest.raises(ConnectionFailed):
        await client.connect()
    assert client.state is ConnectionState.CLOSED
    await client.disconnect()


class Tokens:
    """A token provider that hands out t1, t2, …, sync or async."""

    def __init__(self, asynchronous: bool = False):
        self.issued = 0
        self.asynchronous = asynchronous

    def _next(self) -> str:
        self.issued += 1
        return f"t{self.issued}"

    def __call__(self):
        if not self.asynchronous:
            return self._next()

        async def later() -> str:
            await asyncio.sleep(0)
            return self._next()
        return later()


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_token_provider_is_asked_before_every_connect(edge, asynchronous):
    tokens = Tokens(asynchronous)
    client = TickwireClient(config(edge, token="static", token_provider=tokens))
    await client.connect()
    ws = await edge.wait_open(1)
    await ws.close()
    await edge.wait_open(2)
    assert edge.tokens[:2] == ["Bearer t1", "Bearer t2"]
    await client.disconnect()


async def test_disconnect_returns_though_the_edge_never_answers_the_close_handshake(edge):
    # aiohttp's own close() waits for the close reply as long as other frames keep coming.
    edge.deaf_chatter = True
    errors = []
    client = TickwireClient(config(edge, connect_timeout=0.5))
    client.on_error(errors.append)
    await client.connect()
    await until(lambda: client.state is ConnectionState.OPEN)
    await asyncio.wait_for(client.disconnect(), 30)
    assert client.state is ConnectionState.CLOSED
    assert any("did not answer the close handshake" in str(e) for e in errors)


async def test_token_expiring_is_answered_with_a_refresh_and_rest_reads_use_it(edge):
    client = TickwireClient(config(edge, token_provider=Tokens()))
    await client.subscribe(["AAPL"])
    await client.connect()
    ws = await edge.wait_open(1)
    await ws.send_json({"type": "token_expiring", "expiresInMs": 60000})
    await until(lambda: {"action": "refresh", "token": "t2"} in edge.connections[0])
    # A gap makes the client refetch over REST: with the refreshed token.
    for seq in (1, 5):
        await ws.send_json({"type": "price_update", "symbol": "AAPL", "seq": seq, "epoch": "e1",
                            "data": quote("AAPL", 100.0), "timestamp": "t"})
    await until(lambda: edge.rest_calls == ["AAPL"])
    assert edge.tokens == ["Bearer t1", "Bearer t2"]
    await client.disconnect()


async def test_a_4001_close_reconnects_at_once_with_a_fresh_token(edge):
    # Any other close would wait the top of a 60 s jitter range before reconnecting.
    client = TickwireClient(config(edge, token_provider=Tokens(), reconnect_interval=60),
                            uniform=lambda lo, hi: hi)
    await client.connect()
    ws = await edge.wait_open(1)
    await until(lambda: client.state is ConnectionState.OPEN)
    await ws.close(code=4001, message=b"token expired")
    await edge.wait_open(2, timeout=20)
    assert edge.tokens == ["Bearer t1", "Bearer t2"]
    await client.disconnect()


async def test_a_failing_token_provider_is_a_failed_attempt_not_a_crash(edge):
    def broken() -> str:
        raise RuntimeError("identity service down")

    errors = []
    client = TickwireClient(config(edge, token_provider=broken))
    client.on_error(errors.append)
    await client.connect()
    await until(lambda: errors)
    assert "token provider failed" in str(errors[0]) and not edge.sockets
    assert client.state is ConnectionState.RECONNECTING
    await client.disconnect()
