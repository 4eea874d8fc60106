"""Hostile input against a real edge (issue #19): frames RFC 6455 forbids, WebSocket pings
as a flood, pongs parked by clients that never read, a request head trickled byte by
byte, and malformed HTTP that must not flood the log."""

from __future__ import annotations

import asyncio
import struct
import time

import pytest

from integration.faults import rss_mb
from integration.rawws import RawWebSocket, trickle_upgrade
from integration.wsclient import eventually, subscribed

PING, CLOSE, TEXT = 0x9, 0x8, 0x1


@pytest.fixture
def edge(stack):
    return stack.edge("edge-h1", TICKWIRE_EDGE_REQUEST_HEAD_TIMEOUT_SECONDS="2")


def _connected(edge, **kwargs) -> RawWebSocket:
    raw = RawWebSocket(edge.port, **kwargs)
    opcode, _ = raw.read_frame()  # `connected`
    assert opcode == TEXT
    return raw


def _close_code_after(edge, send, **kwargs) -> int | None:
    raw = _connected(edge, **kwargs)
    try:
        send(raw)
        return raw.close_code()
    finally:
        raw.close()


@pytest.mark.parametrize("name, send, expected", [
    ("unmasked text", lambda raw: raw.send_frame(TEXT, b'{"action":"ping"}', masked=False), 1002),
    ("close 1006", lambda raw: raw.send_frame(CLOSE, struct.pack("!H", 1006)), 1002),
    ("close 5000", lambda raw: raw.send_frame(CLOSE, struct.pack("!H", 5000)), 1002),
    ("close 65535", lambda raw: raw.send_frame(CLOSE, struct.pack("!H", 65535)), 1002),
    ("close 1000", lambda raw: raw.send_frame(CLOSE, struct.pack("!H", 1000)), 1000),
])
async def test_frames_rfc6455_forbids_fail_the_connection_with_1002(edge, name, send, expected):
    assert await asyncio.to_thread(_close_code_after, edge, send) == expected, name


async def test_an_undecodable_compressed_payload_closes_with_1007(edge):
    def junk(raw: RawWebSocket) -> None:
        raw.send_frame(TEXT, b"\xff\xfe\xfd\xfc\xfb", rsv1=True)

    code = await asyncio.to_thread(_close_code_after, edge, junk,
                                   extensions="permessage-deflate")
    assert code == 1007


def _ping_flood(edge, pings: int) -> tuple[int, bytes]:
    """Pongs received before the edge's first text frame after the flood, and that frame."""
    raw = _connected(edge)
    try:
        for n in range(pings):
            raw.send_frame(PING, str(n).encode())
        pongs = 0
        while True:
            opcode, payload = raw.read_frame()
            if opcode == 0xA:
                pongs += 1
            elif opcode == TEXT:
                return pongs, payload
    finally:
        raw.close()


async def test_websocket_pings_count_against_the_message_rate(edge):
    pongs, first_text = await asyncio.to_thread(_ping_flood, edge, 400)
    assert b"RATE_LIMIT_EXCEEDED" in first_text
    assert pongs < 400


def _park_pongs(port: int, pings: int, timestamp_bytes: int) -> RawWebSocket:
    raw = RawWebSocket(port, receive_buffer=4096)  # and never read
    raw.sock.settimeout(60)
    for _ in range(pings):
        raw.send_json({"action": "ping", "timestamp": "x" * timestamp_bytes})
    return raw


async def test_never_reading_clients_echoing_big_pings_do_not_grow_the_edge(edge):
    watcher = await subscribed(edge.ws_url, ["AAPL"])
    parked: list[RawWebSocket] = []
    try:
        before = rss_mb(edge.process.pid)
        parked = await asyncio.gather(*(asyncio.to_thread(_park_pongs, edge.port, 100, 60_000)
                                        for _ in range(40)))
        # Everything the 40 sent has been read once a ping sent after it is answered.
        await watcher.send({"action": "ping", "timestamp": "after"})
        pong = await watcher.until(lambda m: m["type"] == "pong")
        assert pong["timestamp"] == "after"
        grown = rss_mb(edge.process.pid) - before
        # 40 × 100 × 60 KB echoed would be 240 MB.
        assert grown < 60, f"edge RSS grew {grown:.0f} MB"
        assert not watcher.ws.closed
    finally:
        for raw in parked:
            raw.close()
        await watcher.close()


async def test_a_request_head_trickled_directly_to_the_edge_is_cut_off(edge):
    # The bound is 2 s here: 20 bytes at 1 byte/s is well past it.
    answer, sent = await trickle_upgrade(edge.port, 20)
    assert answer is not None, f"still open after {sent} bytes at 1 byte/s"
    assert sent < 20


async def _malformed_request(port: int, request: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()


async def test_a_thousand_malformed_requests_add_a_few_lines_to_the_log(edge):
    request = b"GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: -12345\r\n\r\n"
    assert len(request) == 52
    log = edge.process.log_path
    size_before = log.stat().st_size
    lines_before = log.read_text(errors="replace").count("malformed HTTP request")
    started = time.monotonic()
    for _ in range(10):
        await asyncio.gather(*(_malformed_request(edge.port, request) for _ in range(100)))
    seconds = time.monotonic() - started
    grown = log.stat().st_size - size_before
    lines = log.read_text(errors="replace").count("malformed HTTP request") - lines_before
    assert grown < 8 * 1024, f"the log grew {grown} bytes"
    assert 1 <= lines <= seconds + 2  # at most one line a second
    assert "Traceback" not in log.read_text(errors="replace")


async def test_an_edge_holds_at_most_5000_distinct_symbols(edge):
    clients = []
    try:
        for n in range(10):  # 10 × 500 distinct symbols: the edge's whole capacity
            clients.append(await subscribed(edge.ws_url, [f"E{n}X{i}" for i in range(500)]))
        extra = await subscribed(edge.ws_url, ["E0X0"])  # held already: fits
        clients.append(extra)
        await extra.send({"action": "subscribe", "symbols": ["BEYOND", "E1X1"]})
        error = await extra.until(lambda m: m["type"] == "error")
        assert error["code"] == "SUBSCRIPTION_LIMIT_EXCEEDED" and error["symbols"] == ["BEYOND"]
        ack = await extra.until(lambda m: m["type"] == "subscribed")
        assert ack["symbols"] == ["E1X1"]
        # Released symbols make room again, once their release delay has passed.
        await clients[0].close()
        await eventually(lambda: _subscribes(extra, "BEYOND"), timeout=20, interval=0.5)
    finally:
        for client in clients:
            await client.close()


async def _subscribes(client, symbol: str) -> bool:
    await client.send({"action": "subscribe", "symbols": [symbol]})
    reply = await client.until(lambda m: m["type"] in ("subscribed", "error"))
    return reply["type"] == "subscribed"
