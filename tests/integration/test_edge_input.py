"""Bad input gets a clear error and the connection lives; limits are enforced."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import jwt
import msgpack
import pytest

from integration.wsclient import WsClient, eventually, get_json

LONG_SYMBOLS = [f"S{n}" for n in range(600)]

# (frame sent as text unless bytes, expected error code)
MALFORMED = [
    ("not json", "INVALID_MESSAGE"),
    ("{", "INVALID_MESSAGE"),
    ("", "INVALID_MESSAGE"),
    ("[]", "INVALID_MESSAGE"),
    ("42", "INVALID_MESSAGE"),
    ('"subscribe"', "INVALID_MESSAGE"),
    ("null", "INVALID_MESSAGE"),
    ("{}", "INVALID_MESSAGE"),
    ('{"symbols":["AAPL"]}', "INVALID_MESSAGE"),
    ('{"action":42}', "INVALID_MESSAGE"),
    ('{"action":null}', "INVALID_MESSAGE"),
    ('{"action":"buy","symbols":["AAPL"]}', "UNSUPPORTED_ACTION"),
    ('{"action":"SUBSCRIBE","symbols":["AAPL"]}', "UNSUPPORTED_ACTION"),
    ('{"action":"subscribe"}', "INVALID_MESSAGE"),
    ('{"action":"subscribe","symbols":"AAPL"}', "INVALID_MESSAGE"),
    ('{"action":"subscribe","symbols":[]}', "INVALID_MESSAGE"),
    ('{"action":"subscribe","symbols":{"a":1}}', "INVALID_MESSAGE"),
    ('{"action":"subscribe","symbols":["AAPL"],"maxHz":0}', "INVALID_MESSAGE"),
    ('{"action":"subscribe","symbols":["AAPL"],"maxHz":-1}', "INVALID_MESSAGE"),
    ('{"action":"subscribe","symbols":["AAPL"],"maxHz":"fast"}', "INVALID_MESSAGE"),
    ('{"action":"subscribe","symbols":["AAPL"],"maxHz":true}', "INVALID_MESSAGE"),
    ('{"action":"subscribe","symbols":["$$$"]}', "INVALID_SYMBOL"),
    ('{"action":"subscribe","symbols":["THIS_SYMBOL_IS_WAY_TOO_LONG"]}', "INVALID_SYMBOL"),
    ('{"action":"subscribe","symbols":[null]}', "INVALID_SYMBOL"),
    ('{"action":"unsubscribe","symbols":[".AAPL"]}', "INVALID_SYMBOL"),
    ('{"action":"unsubscribe"}', "INVALID_MESSAGE"),
    (b"\x81\xa6action\xa4ping", "INVALID_MESSAGE"),  # binary on a JSON connection
    ('{"action":"subscribe","symbols":' + str([[[["x"]]]]).replace("'", '"') + "}",
     "INVALID_SYMBOL"),
    # A pong echoes the timestamp: only a short string may come back (issue #19).
    ('{"action":"ping","timestamp":' + "[" * 254 + "]" * 254 + "}", "INVALID_MESSAGE"),
    ('{"action":"ping","timestamp":' + "[" * 1100 + "]" * 1100 + "}", "INVALID_MESSAGE"),
    ('{"action":"ping","timestamp":{"a":{"b":[1,2,3]}}}', "INVALID_MESSAGE"),
    ('{"action":"ping","timestamp":12345}', "INVALID_MESSAGE"),
    ('{"action":"ping","timestamp":true}', "INVALID_MESSAGE"),
    ('{"action":"ping","timestamp":"' + "x" * 65 + '"}', "INVALID_MESSAGE"),
    ('{"action":"ping","timestamp":"' + "x" * 60_000 + '"}', "INVALID_MESSAGE"),
]


async def test_every_malformed_input_gets_its_error_and_the_socket_lives(stack):
    edge = stack.edge("edge-i1")
    client = await WsClient.connect(edge.ws_url)
    try:
        await client.next()
        for frame, code in MALFORMED:
            if isinstance(frame, bytes):
                await client.ws.send_bytes(frame)
            else:
                await client.ws.send_str(frame)
            error = await client.until(lambda m: m["type"] == "error")
            assert error["code"] == code, frame
            assert error["message"] and error["timestamp"]
        await client.send({"action": "ping", "timestamp": "still-here"})
        pong = await client.until(lambda m: m["type"] == "pong")
        assert pong["timestamp"] == "still-here"
    finally:
        await client.close()


async def test_truncated_msgpack_is_an_error(stack):
    edge = stack.edge("edge-i2")
    client = await WsClient.connect(edge.ws_url, protocols=("tickwire.v1.msgpack",))
    try:
        await client.next()
        await client.ws.send_bytes(msgpack.packb({"action": "subscribe", "symbols": ["A"]})[:-3])
        error = await client.until(lambda m: m["type"] == "error")
        assert error["code"] == "INVALID_MESSAGE"
        await client.send({"action": "ping", "timestamp": "1"})
        assert (await client.until(lambda m: m["type"] == "pong"))["timestamp"] == "1"
    finally:
        await client.close()


async def test_oversized_frame_is_closed_with_1009(stack):
    edge = stack.edge("edge-i3")
    client = await WsClient.connect(edge.ws_url)
    try:
        await client.next()
        await client.ws.send_str('{"action":"ping","timestamp":"' + "x" * 70_000 + '"}')
        frame = await client.ws.receive(timeout=10)
        assert frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert client.ws.close_code == 1009
    finally:
        await client.close()


async def test_symbol_limit_per_connection(stack):
    edge = stack.edge("edge-i4", TICKWIRE_EDGE_MAX_SYMBOLS="20")
    client = await WsClient.connect(edge.ws_url)
    try:
        await client.next()
        await client.send({"action": "subscribe", "symbols": LONG_SYMBOLS[:25]})
        error = await client.until(lambda m: m["type"] == "error")
        assert error["code"] == "SUBSCRIPTION_LIMIT_EXCEEDED"
        assert error["symbols"] == LONG_SYMBOLS[20:25]
        ack = await client.until(lambda m: m["type"] == "subscribed")
        assert ack["symbols"] == LONG_SYMBOLS[:20]
    finally:
        await client.close()


async def test_message_rate_is_limited_then_the_abuser_is_closed_1008(stack):
    edge = stack.edge("edge-i5", TICKWIRE_EDGE_MESSAGES_PER_SECOND="5",
                      TICKWIRE_EDGE_MESSAGE_BURST="5", TICKWIRE_EDGE_RATE_LIMIT_CLOSE_SECONDS="1")
    client = await WsClient.connect(edge.ws_url)
    try:
        await client.next()
        for _ in range(10):
            await client.send({"action": "ping", "timestamp": "t"})
        error = await client.until(lambda m: m["type"] == "error")
        assert error["code"] == "RATE_LIMIT_EXCEEDED"
        # Keep abusing while a reader drains the socket until the edge closes it.
        reader = asyncio.create_task(_read_until_closed(client))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not reader.done():
            try:
                await client.send({"action": "ping", "timestamp": "t"})
            except ConnectionError:
                break
            await asyncio.sleep(0.02)
        await asyncio.wait_for(reader, 15)
        assert client.ws.close_code == 1008
    finally:
        await client.close()


async def _read_until_closed(client: WsClient) -> None:
    while True:
        frame = await client.ws.receive()
        if frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                          aiohttp.WSMsgType.ERROR):
            return


async def test_heartbeat_closes_a_client_that_misses_two_pings(stack):
    edge = stack.edge("edge-i6", TICKWIRE_EDGE_HEARTBEAT_INTERVAL="1")
    silent = await WsClient.connect(edge.ws_url, autoping=False)
    polite = await WsClient.connect(edge.ws_url)
    try:
        frames = []
        while True:
            frame = await silent.ws.receive(timeout=15)
            frames.append(frame.type)
            if frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                break
        assert aiohttp.WSMsgType.PING in frames
        assert not polite.ws.closed  # it answered the pings
    finally:
        await silent.close()
        await polite.close()


async def _admitted(ws_url: str) -> WsClient | None:
    """A client, once the edge has released a slot for it."""
    try:
        return await WsClient.connect(ws_url)
    except aiohttp.WSServerHandshakeError:
        return None


async def test_connections_per_address_are_capped_before_the_upgrade(stack):
    edge = stack.edge("edge-i7", TICKWIRE_EDGE_MAX_CONNECTIONS_PER_IP="3")
    clients = [await WsClient.connect(edge.ws_url) for _ in range(3)]
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await WsClient.connect(edge.ws_url)
        assert refused.value.status == 503
        await clients.pop().close()
        clients.append(await eventually(lambda: _admitted(edge.ws_url)))
        status, _, _ = await get_json(f"{edge.url}/readyz")
        assert status == 200
    finally:
        for client in clients:
            await client.close()


async def test_connection_rate_per_address_gets_429(stack):
    edge = stack.edge("edge-i8", TICKWIRE_EDGE_CONNECTIONS_PER_SECOND_PER_IP="1",
                      TICKWIRE_EDGE_CONNECTION_BURST_PER_IP="3")
    statuses = []
    clients = []
    try:
        for _ in range(6):
            try:
                clients.append(await WsClient.connect(edge.ws_url))
                statuses.append(101)
            except aiohttp.WSServerHandshakeError as exc:
                statuses.append(exc.status)
        assert statuses[:3] == [101, 101, 101] and 429 in statuses[3:]
    finally:
        for client in clients:
            await client.close()


async def test_origin_allow_list(stack):
    edge = stack.edge("edge-i9", TICKWIRE_EDGE_ALLOWED_ORIGINS="https://app.example")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await WsClient.connect(edge.ws_url, origin="https://evil.example")
    assert refused.value.status == 403
    allowed = await WsClient.connect(edge.ws_url, origin="https://app.example")
    await allowed.close()


SECRET = "test-secret-that-is-long-enough-for-hs256"


async def test_jwt_auth_before_the_upgrade_and_tier_limits(stack):
    edge = stack.edge("edge-i10", TICKWIRE_EDGE_JWT_SECRET=SECRET, TICKWIRE_EDGE_MAX_SYMBOLS="2",
                      TICKWIRE_EDGE_TIER_SYMBOL_LIMITS="pro=5")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await WsClient.connect(edge.ws_url)
    assert refused.value.status == 401
    forged = jwt.encode({"sub": "u1", "exp": time.time() + 60}, "wrong-secret-wrong-secret-wrong!!", "HS256")
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await WsClient.connect(f"{edge.ws_url}?token={forged}")
    expired = jwt.encode({"sub": "u1", "exp": time.time() - 60}, SECRET, "HS256")
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await WsClient.connect(f"{edge.ws_url}?token={expired}")
    status, body, _ = await get_json(f"{edge.url}/api/quotes/AAPL")
    assert status == 401 and body["error"]["code"] == "UNAUTHORIZED"

    pro = jwt.encode({"sub": "u2", "tier": "pro", "exp": time.time() + 60}, SECRET, "HS256")
    client = await WsClient.connect(edge.ws_url, headers={"Authorization": f"Bearer {pro}"})
    try:
        await client.next()
        await client.send({"action": "subscribe", "symbols": LONG_SYMBOLS[:6]})
        error = await client.until(lambda m: m["type"] == "error")
        assert error["code"] == "SUBSCRIPTION_LIMIT_EXCEEDED" and error["symbols"] == ["S5"]
    finally:
        await client.close()
    free = jwt.encode({"sub": "u3", "exp": time.time() + 60}, SECRET, "HS256")
    client = await WsClient.connect(f"{edge.ws_url}?token={free}")
    try:
        await client.next()
        await client.send({"action": "subscribe", "symbols": LONG_SYMBOLS[:3]})
        error = await client.until(lambda m: m["type"] == "error")
        assert error["symbols"] == ["S2"]
    finally:
        await client.close()
