"""The compressed path (issue #20): permessage-deflate answered without server context
takeover, and one compressed frame per tick shared by every compressed socket."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import zlib

import orjson
import pytest

from integration.wsclient import WsClient, eventually

pytestmark = pytest.mark.asyncio

CHROMIUM_OFFER = "permessage-deflate; client_max_window_bits"


async def _subscribed(injector, symbol: str) -> bool:
    return await injector.subscribers(symbol) > 0


class DeflateSocket:
    """A bare client that offers permessage-deflate as Chromium does and keeps every
    server frame's raw bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 extensions: str):
        self.reader, self.writer, self.extensions = reader, writer, extensions

    @classmethod
    async def connect(cls, port: int) -> DeflateSocket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: "
                      f"{CHROMIUM_OFFER}\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101"), head
        extensions = next((line.split(b":", 1)[1].strip().decode()
                           for line in head.split(b"\r\n")
                           if line.lower().startswith(b"sec-websocket-extensions:")), "")
        return cls(reader, writer, extensions)

    async def frame(self) -> tuple[int, bytes]:
        """The next server frame: (first header byte, the frame's bytes as sent)."""
        head = await asyncio.wait_for(self.reader.readexactly(2), 10)
        size = head[1] & 0x7F
        extra = b""
        if size == 126:
            extra = await self.reader.readexactly(2)
            size = struct.unpack("!H", extra)[0]
        elif size == 127:
            extra = await self.reader.readexactly(8)
            size = struct.unpack("!Q", extra)[0]
        payload = await self.reader.readexactly(size)
        return head[0], head + extra + payload

    def send_json(self, message: dict) -> None:
        payload = orjson.dumps(message)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + masked)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def inflate_alone(frame: bytes) -> dict:
    """Inflate one compressed frame with a fresh inflater: it must need no history."""
    size = frame[1] & 0x7F
    start = 2 + (2 if size == 126 else 8 if size == 127 else 0)
    return orjson.loads(zlib.decompressobj(-15).decompress(frame[start:] + b"\x00\x00\xff\xff"))


async def test_chromium_offer_is_answered_without_server_context_takeover(stack, injector):
    edge = stack.edge("edge-z1")
    client = await WsClient.connect(edge.ws_url, compress=15)
    try:
        extensions = client.ws._response.headers["Sec-WebSocket-Extensions"]
        assert "server_no_context_takeover" in extensions
        await client.next()
        await client.send({"action": "subscribe", "symbols": ["ZA"]})
        await client.until(lambda m: m["type"] == "subscribed")
        await eventually(lambda: _subscribed(injector, "ZA"))
        for seq in range(1, 6):
            await injector.publish("ZA", seq)
        updates = await client.updates("ZA", 5)
        assert [u["seq"] for u in updates] == [1, 2, 3, 4, 5]
    finally:
        await client.close()


async def test_every_compressed_socket_gets_the_same_self_contained_frame(stack, injector):
    edge = stack.edge("edge-z2")
    sockets = [await DeflateSocket.connect(edge.port) for _ in range(3)]
    try:
        for sock in sockets:
            assert sock.extensions.startswith("permessage-deflate")
            assert "server_no_context_takeover" in sock.extensions
            first, frame = await sock.frame()
            assert first & 0x40 and inflate_alone(frame)["type"] == "connected"
            sock.send_json({"action": "subscribe", "symbols": ["ZB"]})
            _, ack = await sock.frame()
            assert inflate_alone(ack)["type"] == "subscribed"
        await eventually(lambda: _subscribed(injector, "ZB"))
        for seq in (7, 8):
            await injector.publish("ZB", seq)
            frames = [await sock.frame() for sock in sockets]
            assert all(first == 0xC1 for first, _ in frames)  # final, RSV1, text
            assert len({raw for _, raw in frames}) == 1  # the same bytes on every socket
            update = inflate_alone(frames[0][1])
            assert update["type"] == "price_update" and update["seq"] == seq
    finally:
        for sock in sockets:
            await sock.close()
