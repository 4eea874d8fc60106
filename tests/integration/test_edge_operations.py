"""Fan-out across edges, slow consumers, control messages and draining."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import msgpack

from integration.faults import metric
from integration.rawws import RawWebSocket
from integration.wsclient import WsClient, eventually, get_json, subscribed


async def test_two_edges_deliver_the_same_seqs(stack, injector):
    a, b = stack.edge("edge-o1a"), stack.edge("edge-o1b")
    clients = [await subscribed(a.ws_url, ["TWIN"]), await subscribed(b.ws_url, ["TWIN"])]
    try:
        await eventually(lambda: _channel_subscribers(injector, "TWIN", 2))
        for seq in range(1, 21):
            await injector.publish("TWIN", seq)
        streams = [await c.updates("TWIN", 20) for c in clients]
        assert [u["seq"] for u in streams[0]] == list(range(1, 21))
        assert [u["seq"] for u in streams[1]] == list(range(1, 21))
        assert [u["data"] for u in streams[0]] == [u["data"] for u in streams[1]]
    finally:
        for client in clients:
            await client.close()


async def _channel_subscribers(injector, symbol: str, count: int) -> bool:
    return await injector.subscribers(symbol) == count


async def test_a_client_that_stops_reading_is_conflated_then_shed_while_others_get_every_tick(
        stack, injector):
    edge = stack.edge("edge-o2", TICKWIRE_EDGE_SLOW_CLIENT_SECONDS="2")
    symbols = [f"SL{n}" for n in range(10)]
    slow = RawWebSocket(edge.port, receive_buffer=4096)
    slow.send_json({"action": "subscribe", "symbols": symbols})
    fast = await subscribed(edge.ws_url, symbols)
    try:
        await eventually(lambda: _channel_subscribers(injector, "SL9", 1))
        # The fast client reads all along, as a client that keeps up does.
        fast_stream = asyncio.create_task(_read_seqs(fast, symbols[0]))
        padding = "x" * 2000  # big frames fill the slow client's buffers quickly
        rounds = 0
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            rounds += 1
            for symbol in symbols:
                await injector.publish(symbol, rounds, source=padding)
            await asyncio.sleep(0.02)
            if rounds % 25 == 0 and await metric(edge.url, "tickwire_edge_connections_closed_total",
                                                 '{reason="slow consumer"}') >= 1:
                break
        assert await metric(edge.url, "tickwire_edge_connections_closed_total",
                            '{reason="slow consumer"}') == 1
        assert await metric(edge.url, "tickwire_edge_conflated_updates_total") > 0
        await injector.publish(symbols[0], rounds + 1)  # the end marker
        seqs = await asyncio.wait_for(fast_stream, 60)
        assert seqs == list(range(1, rounds + 2))
        # The slow socket was closed by the edge (1013, or aborted when it could not
        # even take the close frame); its buffered bytes end in EOF or a reset.
        slow.drain_until_closed()
        status, _, _ = await get_json(f"{edge.url}/readyz")
        assert status == 200
    finally:
        slow.close()
        await fast.close()


async def _read_seqs(client: WsClient, symbol: str) -> list[int]:
    """Every seq of `symbol` until a frame without padding (the end marker) arrives."""
    seqs: list[int] = []
    while True:
        message = await client.next(timeout=60)
        updates = (message["updates"] if message.get("type") == "batch_update"
                   else [message] if message.get("type") == "price_update" else [])
        for update in updates:
            if update["symbol"] == symbol:
                seqs.append(update["seq"])
                if update["data"]["source"] == "test":
                    return seqs


async def test_pause_holds_ticks_and_resume_delivers_the_newest(stack, injector):
    edge = stack.edge("edge-o3")
    client = await subscribed(edge.ws_url, ["PAUSE"])
    try:
        await eventually(lambda: _channel_subscribers(injector, "PAUSE", 1))
        # Redis hands the edge what is published in publish order: the pause lands first.
        await injector.redis.publish("market-data:control",
                                     msgpack.packb({"type": "pause", "edge": "edge-o3"}))
        received = await metric(edge.url, "tickwire_edge_ticks_received_total")
        for seq in range(1, 6):
            await injector.publish("PAUSE", seq)
        # A control message for another edge changes nothing here.
        await injector.redis.publish("market-data:control", b'{"type":"resume","edge":"other"}')
        await eventually(lambda: _ticks_received(edge.url, received + 5))
        # The edge holds the five ticks. Unpaused, it would have queued them at once,
        # before the pong asked for now: read everything up to the pong.
        await client.send({"action": "ping", "timestamp": "during the pause"})
        await client.until(lambda m: m["type"] == "pong")
        assert not [m for m in client.received if m.get("type") in ("price_update", "batch_update")]
        await injector.redis.publish("market-data:control", b'{"type":"resume","edge":"*"}')
        [update] = await client.updates("PAUSE", 1)
        assert update["seq"] == 5
        await injector.publish("PAUSE", 6)
        [update] = await client.updates("PAUSE", 1)
        assert update["seq"] == 6
    finally:
        await client.close()


async def _ticks_received(url: str, count: float) -> bool:
    return await metric(url, "tickwire_edge_ticks_received_total") >= count


async def _drained_clients(url: str, count: int) -> list[WsClient]:
    return [await subscribed(url, ["DRAIN"]) for _ in range(count)]


async def _reconnect_and_close(client: WsClient) -> tuple[dict, int, float]:
    notice = await client.until(lambda m: m["type"] == "reconnect", timeout=30)
    frame = await client.ws.receive(timeout=30)
    while frame.type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
        frame = await client.ws.receive(timeout=30)
    return notice, client.ws.close_code, time.monotonic()


async def test_drain_message_spreads_reconnects_and_exits(stack, injector):
    edge = stack.edge("edge-o4", TICKWIRE_EDGE_DRAIN_SECONDS="3")
    clients = await _drained_clients(edge.ws_url, 12)
    try:
        started = time.monotonic()
        # Read all along, as live clients do: a close frame is answered as it arrives.
        reading = asyncio.gather(*(_reconnect_and_close(c) for c in clients))
        await injector.redis.publish("market-data:control",
                                     msgpack.packb({"type": "drain", "edge": "edge-o4"}))
        status, body, _ = await eventually(lambda: _not_ready(edge.url), timeout=10)
        assert body["reason"] == "draining"
        with_refusal = await _refused_status(edge.ws_url)
        assert with_refusal == 503
        outcomes = await reading
        notices = [n for n, _, _ in outcomes]
        assert all(n["reason"] == "draining" for n in notices)
        assert len({n["retryAfterMs"] for n in notices}) > len(clients) // 2
        assert all(0 <= n["retryAfterMs"] <= 3000 for n in notices)
        assert {code for _, code, _ in outcomes} == {1001}
        closes = sorted(t - started for _, _, t in outcomes)
        assert closes[-1] - closes[0] >= 1.0  # staggered over the window, not a storm
        assert edge.process.proc.wait(timeout=30) == 0
    finally:
        for client in clients:
            await client.close()


async def _not_ready(url: str):
    status, body, headers = await get_json(f"{url}/readyz")
    return (status, body, headers) if status == 503 else None


async def _refused_status(ws_url: str) -> int:
    try:
        client = await WsClient.connect(ws_url)
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status
    await client.close()
    return 101


async def test_sigterm_drains_and_the_registry_drops_the_edge(stack):
    registry = stack.registry()
    edge = stack.edge("edge-o5", TICKWIRE_EDGE_DRAIN_SECONDS="1")
    clients = await _drained_clients(edge.ws_url, 3)
    try:
        await eventually(lambda: _registry_has(registry.url, "DRAIN"))
        edge.process.signal(signal.SIGTERM)
        outcomes = await asyncio.gather(*(_reconnect_and_close(c) for c in clients))
        assert {code for _, code, _ in outcomes} == {1001}
        assert edge.process.proc.wait(timeout=30) == 0
        await eventually(lambda: _registry_lacks(registry.url, "DRAIN"), timeout=10)
    finally:
        for client in clients:
            await client.close()


async def _registry_has(url: str, symbol: str) -> bool:
    _, body, _ = await get_json(f"{url}/api/symbols")
    return any(s["symbol"] == symbol for s in body["symbols"])


async def _registry_lacks(url: str, symbol: str) -> bool:
    return not await _registry_has(url, symbol)


async def test_data_stale_reaches_subscribers_once_and_new_subscribers_until_recovered(
        stack, injector):
    edge = stack.edge("edge-o6")
    watcher = await subscribed(edge.ws_url, ["STL1", "STL2", "OK1"])
    other = await subscribed(edge.ws_url, ["OK1"])
    try:
        await eventually(lambda: _channel_subscribers(injector, "STL1", 1))
        stale = {"type": "stale", "symbols": ["STL1", "STL2", "NOBODY"], "reason": "all down",
                 "ts": 1}
        for symbol in stale["symbols"]:  # the ingestor flags the feed, then announces it
            await injector.redis.hset(f"market-data:feed:{symbol}", "stale", "1")
        await injector.redis.publish("market-data:status", msgpack.packb(stale))
        error = await watcher.until(lambda m: m["type"] == "error")
        assert error["code"] == "DATA_STALE" and sorted(error["symbols"]) == ["STL1", "STL2"]
        late = await subscribed(edge.ws_url, ["STL2"])
        error = await late.until(lambda m: m["type"] == "error")
        assert error["code"] == "DATA_STALE" and error["symbols"] == ["STL2"]
        await late.close()
        for symbol in ("STL1", "STL2"):
            await injector.redis.hdel(f"market-data:feed:{symbol}", "stale")
        await injector.redis.publish("market-data:status", msgpack.packb(
            {"type": "recovered", "symbols": ["STL1", "STL2"], "reason": "", "ts": 2}))
        await injector.redis.publish("market-data:status", b"junk")  # ignored, logged
        # Published after both: once the edge has this tick, it has read them.
        received = await metric(edge.url, "tickwire_edge_ticks_received_total")
        await injector.publish("OK1", 1)
        await eventually(lambda: _ticks_received(edge.url, received + 1))
        after = await subscribed(edge.ws_url, ["STL2"])
        await after.send({"action": "ping", "timestamp": "p"})
        await after.until(lambda m: m["type"] == "pong")
        assert not [m for m in after.received if m["type"] == "error"]
        await after.close()
        assert not [m for m in other.received if m["type"] == "error"]
    finally:
        await watcher.close()
        await other.close()
