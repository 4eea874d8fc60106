"""The edge's WebSocket protocol through a real socket (DESIGN.md §3)."""

from __future__ import annotations

import asyncio

import aiohttp
import msgpack
import pytest

from integration.wsclient import WsClient, eventually

pytestmark = pytest.mark.asyncio


async def connected(url: str, **kwargs) -> WsClient:
    client = await WsClient.connect(url, **kwargs)
    hello = await client.next()
    assert hello["type"] == "connected"
    return client


async def test_connected_carries_ids_and_header(stack):
    edge = stack.edge("edge-p1")
    client = await connected(edge.ws_url)
    try:
        hello = client.received[0]
        assert hello["edgeId"] == "edge-p1" and len(hello["clientId"]) >= 16
        assert client.ws._response.headers["X-Tickwire-Edge"] == "edge-p1"
    finally:
        await client.close()


async def test_snapshot_then_stream_without_gap_or_regression(stack, injector):
    edge = stack.edge("edge-p2")
    await injector.publish("SNAP", 41)
    client = await connected(edge.ws_url)
    try:
        await client.send({"action": "subscribe", "symbols": ["snap"]})
        ack = await client.next()
        assert ack == {**ack, "type": "subscribed", "symbols": ["SNAP"]}
        snapshot = await client.next()
        assert snapshot["type"] == "price_update" and snapshot["snapshot"] is True
        assert snapshot["seq"] == 41 and snapshot["epoch"] == "e1"
        await eventually(lambda: _subscribed(injector, "SNAP"))
        for seq in range(42, 47):
            await injector.publish("SNAP", seq)
        updates = await client.updates("SNAP", 5)
        assert [u["seq"] for u in updates] == [42, 43, 44, 45, 46]
        assert not any(u.get("snapshot") for u in updates)
    finally:
        await client.close()


async def _subscribed(injector, symbol: str) -> bool:
    return await injector.subscribers(symbol) > 0


async def test_duplicates_are_dropped_and_a_new_epoch_is_followed(stack, injector):
    edge = stack.edge("edge-p3")
    client = await connected(edge.ws_url)
    try:
        await client.send({"action": "subscribe", "symbols": ["DUP"]})
        await client.until(lambda m: m["type"] == "subscribed")
        await eventually(lambda: _subscribed(injector, "DUP"))
        for seq, epoch in [(5, "a"), (5, "a"), (4, "a"), (6, "a"), (1, "b"), (2, "b")]:
            await injector.publish("DUP", seq, epoch)
            await asyncio.sleep(0.05)  # keep frames apart so none is conflated
        updates = await client.updates("DUP", 4)
        assert [(u["epoch"], u["seq"]) for u in updates] == [("a", 5), ("a", 6), ("b", 1), ("b", 2)]
    finally:
        await client.close()


async def test_watchlist_subscribe_gets_one_ack_and_names_invalid_symbols(stack):
    edge = stack.edge("edge-p4")
    client = await connected(edge.ws_url)
    try:
        watchlist = [f"W{n:03d}" for n in range(300)] + ["bad symbol", "", 42]
        await client.send({"action": "subscribe", "symbols": watchlist})
        error = await client.until(lambda m: m["type"] == "error")
        assert error["code"] == "INVALID_SYMBOL"
        assert set(error["symbols"]) == {"bad symbol", "", "42"}
        ack = await client.until(lambda m: m["type"] == "subscribed")
        assert ack["symbols"] == watchlist[:300]
        await client.send({"action": "unsubscribe", "symbols": watchlist[:10]})
        gone = await client.until(lambda m: m["type"] == "unsubscribed")
        assert gone["symbols"] == watchlist[:10]
        assert not [m for m in client.received if m["type"] == "subscribed" and m is not ack]
    finally:
        await client.close()


async def test_ping_pong_echoes_the_client_timestamp(stack):
    edge = stack.edge("edge-p5")
    client = await connected(edge.ws_url)
    try:
        await client.send({"action": "ping", "timestamp": "2024-01-10T10:30:00Z"})
        pong = await client.next()
        assert pong["type"] == "pong" and pong["timestamp"] == "2024-01-10T10:30:00Z"
        assert pong["serverTime"].endswith("Z")
    finally:
        await client.close()


async def test_msgpack_subprotocol_switches_both_directions(stack, injector):
    edge = stack.edge("edge-p6")
    client = await WsClient.connect(edge.ws_url, protocols=("tickwire.v1.msgpack",))
    try:
        assert client.ws.protocol == "tickwire.v1.msgpack"
        frame = await client.ws.receive(timeout=10)
        assert frame.type == aiohttp.WSMsgType.BINARY
        assert msgpack.unpackb(frame.data)["type"] == "connected"
        await client.send({"action": "subscribe", "symbols": ["MPK"]})
        await client.until(lambda m: m["type"] == "subscribed")
        await eventually(lambda: _subscribed(injector, "MPK"))
        await injector.publish("MPK", 1)
        [update] = await client.updates("MPK", 1)
        assert update["data"]["symbol"] == "MPK" and update["seq"] == 1
        # A JSON text frame on a msgpack connection is an error, not a crash.
        await client.ws.send_str('{"action":"ping"}')
        error = await client.until(lambda m: m["type"] == "error")
        assert error["code"] == "INVALID_MESSAGE"
    finally:
        await client.close()


async def test_json_subprotocol_by_name(stack):
    edge = stack.edge("edge-p7")
    client = await WsClient.connect(edge.ws_url, protocols=("tickwire.v1.json",))
    try:
        assert client.ws.protocol == "tickwire.v1.json"
        assert (await client.next())["type"] == "connected"
    finally:
        await client.close()


async def test_max_hz_limits_the_rate_and_keeps_the_newest(stack, injector):
    edge = stack.edge("edge-p8")
    client = await connected(edge.ws_url)
    try:
        await client.send({"action": "subscribe", "symbols": ["HZ"], "maxHz": 2})
        await client.until(lambda m: m["type"] == "subscribed")
        await eventually(lambda: _subscribed(injector, "HZ"))
        loop = asyncio.get_running_loop()
        started = loop.time()
        for seq in range(1, 61):  # about 3 s at 20 ticks/s
            await injector.publish("HZ", seq)
            await asyncio.sleep(0.05)
        elapsed = loop.time() - started
        # The throttle releases the newest pending value when it is due.
        await client.until(lambda m: m.get("type") == "price_update" and m["seq"] == 60)
        updates = [m for m in client.received if m.get("type") == "price_update"]
        # At most maxHz per second (+1 for the window edges), and the last one is the newest.
        assert len(updates) <= int(elapsed * 2) + 2
        assert updates[-1]["seq"] == 60
        seqs = [u["seq"] for u in updates]
        assert seqs == sorted(seqs)
        # Subscribing again without maxHz lifts the limit.
        await client.send({"action": "subscribe", "symbols": ["HZ"]})
        await client.until(lambda m: m["type"] == "subscribed")
        for seq in range(61, 71):
            await injector.publish("HZ", seq)
            await asyncio.sleep(0.02)
        later = await client.updates("HZ", 1)
        assert later[0]["seq"] > 60
    finally:
        await client.close()


async def test_unsubscribe_releases_the_redis_channel_when_last(stack, injector):
    edge = stack.edge("edge-p9")
    first, second = await connected(edge.ws_url), await connected(edge.ws_url)
    try:
        for client in (first, second):
            await client.send({"action": "subscribe", "symbols": ["REF"]})
            await client.until(lambda m: m["type"] == "subscribed")
        assert await injector.subscribers("REF") == 1  # one upstream subscription per edge
        await first.send({"action": "unsubscribe", "symbols": ["REF"]})
        await first.until(lambda m: m["type"] == "unsubscribed")
        assert await injector.subscribers("REF") == 1
        await second.close()
        await eventually(lambda: _unsubscribed(injector, "REF"))
    finally:
        await first.close()
        await second.close()


async def _unsubscribed(injector, symbol: str) -> bool:
    return await injector.subscribers(symbol) == 0


async def test_permessage_deflate_when_offered_and_off_by_setting(stack, injector):
    on, off = stack.edge("edge-p10"), stack.edge("edge-p11", TICKWIRE_EDGE_COMPRESSION="false")
    for edge, expected in ((on, True), (off, False)):
        client = await WsClient.connect(edge.ws_url, compress=15)
        try:
            assert bool(client.ws.compress) is expected
            await client.next()
            await client.send({"action": "subscribe", "symbols": ["ZIP"]})
            await client.until(lambda m: m["type"] == "subscribed")
            await eventually(lambda: _subscribed(injector, "ZIP"))
            await injector.publish("ZIP", 1 if expected else 2)
            [update] = await client.updates("ZIP", 1)
            assert update["data"]["symbol"] == "ZIP"
        finally:
            await client.close()
