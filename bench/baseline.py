"""The baseline: the least a server on this stack (aiohttp + uvloop + Redis Pub/Sub) must do
to forward ticks to sockets, so that tickwire's figures have a floor to be compared with.

What it does: accept `/ws`, take the client's first message as its watchlist, answer
`subscribed`, SUBSCRIBE the new channels on one Redis connection, and for every tick
decode it once, encode the same `price_update` JSON (or msgpack) tickwire sends once,
and append that one frame to each watcher's pending writes. Writes are coalesced: all
frames due to a socket from one Redis read go out in one `writelines` (one syscall).

What it does not: no snapshots, unsubscribe, rate limits, heartbeats, admission,
Kafka, metrics, seq ordering, conflation or slow-client shedding (a client whose
unsent output passes 8 MiB is dropped, nothing gentler). Redis is read with a hand-written
RESP parser on a raw asyncio Protocol: no per-message await.

Run: `python -m bench.baseline --port 8099 --redis-url redis://127.0.0.1:6379/0`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from urllib.parse import urlparse

import msgpack
import orjson
import uvloop
from aiohttp import WSMsgType, web

from tickwire.core import names
from tickwire.core.models import iso_now

MSGPACK_SUBPROTOCOL = "tickwire.v1.msgpack"
JSON_SUBPROTOCOL = "tickwire.v1.json"
MAX_UNSENT = 8 << 20


def server_frame(opcode: int, payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        return bytes((0x80 | opcode, size)) + payload
    if size < 65536:
        return bytes((0x80 | opcode, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x80 | opcode, 127)) + size.to_bytes(8, "big") + payload


class Conn:
    __slots__ = ("transport", "binary", "pending")

    def __init__(self, transport: asyncio.Transport, binary: bool):
        self.transport = transport
        self.binary = binary
        self.pending: list[bytes] = []


class Forwarder(asyncio.Protocol):
    """One Redis Pub/Sub connection and the fan-out of what arrives on it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.watchers: dict[str, set[Conn]] = {}
        self.confirmed: dict[str, asyncio.Future] = {}
        self.ready = asyncio.Event()
        self.closing = False

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.ready.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:  # a floor has no reconnect logic: fail the trial loudly
            print(f"redis connection lost: {exc!r}", flush=True)
            os._exit(3)

    async def watch(self, conn: Conn, symbols: list[str]) -> None:
        """Returns once Redis confirmed every channel of `symbols`."""
        loop = asyncio.get_running_loop()
        new = [s for s in symbols if s not in self.watchers]
        for symbol in symbols:
            self.watchers.setdefault(symbol, set()).add(conn)
        if new:
            parts = [b"SUBSCRIBE", *(names.tick_channel(s).encode() for s in new)]
            self.transport.write(b"*%d\r\n" % len(parts) + b"".join(
                b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
        await asyncio.gather(*(self.confirmed.setdefault(names.tick_channel(s),
                                                         loop.create_future())
                               for s in symbols))

    def forget(self, conn: Conn) -> None:
        for watchers in self.watchers.values():
            watchers.discard(conn)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos, dirty = 0, []
        while True:
            parsed = _parse_array(buf, pos)
            if parsed is None:
                break
            items, pos = parsed
            if items[0] == b"message":
                self._dispatch(items[1].decode(), items[2], dirty)
            elif items[0] == b"subscribe":
                waiter = self.confirmed.get(items[1].decode())
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
        del buf[:pos]
        for conn in dirty:
            pending, conn.pending = conn.pending, []
            transport = conn.transport
            if transport.is_closing():
                continue
            transport.writelines(pending)
            if transport.get_write_buffer_size() > MAX_UNSENT:
                transport.abort()

    def _dispatch(self, channel: str, payload: bytes, dirty: list[Conn]) -> None:
        watchers = self.watchers.get(names.symbol_from_channel(channel))
        if not watchers:
            return
        tick = msgpack.unpackb(payload)
        message = {"type": "price_update", "symbol": tick["symbol"], "data": tick["data"],
                   "seq": tick["seq"], "epoch": tick["epoch"], "timestamp": iso_now()}
        text = binary = None
        for conn in watchers:
            if conn.binary:
                if binary is None:
                    binary = server_frame(0x2, msgpack.packb(message, use_bin_type=True))
                frame = binary
            else:
                if text is None:
                    text = server_frame(0x1, orjson.dumps(message))
                frame = text
            if not conn.pending:
                dirty.append(conn)
            conn.pending.append(frame)


def _parse_array(buf: bytearray, pos: int) -> tuple[list, int] | None:
    """One RESP array of bulk strings and integers at `pos`, or None if incomplete."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None
    if buf[pos] != 0x2A:  # '*'
        raise ValueError(f"unexpected RESP {bytes(buf[pos:pos + 40])!r}")
    count, pos = int(buf[pos + 1:end]), end + 2
    items: list = []
    for _ in range(count):
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None
        if buf[pos] == 0x24:  # '$'
            size = int(buf[pos + 1:end])
            start = end + 2
            if start + size + 2 > len(buf):
                return None
            items.append(bytes(buf[start:start + size]))
            pos = start + size + 2
        else:
            items.append(int(buf[pos + 1:end]))
            pos = end + 2
    return items, pos


FORWARDER = web.AppKey("forwarder", Forwarder)


async def websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=(MSGPACK_SUBPROTOCOL, JSON_SUBPROTOCOL), compress=False)
    await ws.prepare(request)
    binary = ws.ws_protocol == MSGPACK_SUBPROTOCOL
    conn = Conn(request.transport, binary)
    forwarder = request.app[FORWARDER]
    first = await ws.receive()
    if first.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
        return ws
    watchlist = (msgpack.unpackb(first.data) if binary else orjson.loads(first.data))["symbols"]
    try:
        await forwarder.watch(conn, watchlist)
        ack = {"type": "subscribed", "symbols": watchlist, "timestamp": iso_now()}
        conn.transport.write(server_frame(0x2, msgpack.packb(ack)) if binary
                             else server_frame(0x1, orjson.dumps(ack)))
        async for _ in ws:
            pass
    finally:
        forwarder.forget(conn)
    return ws


async def readyz(request: web.Request) -> web.Response:
    return web.json_response({"ready": request.app[FORWARDER].ready.is_set()})


def build_app(redis_url: str) -> web.Application:
    app = web.Application()

    async def redis_listener(app: web.Application):
        url = urlparse(redis_url)
        loop = asyncio.get_running_loop()
        transport, forwarder = await loop.create_connection(
            Forwarder, url.hostname or "127.0.0.1", url.port or 6379)
        app[FORWARDER] = forwarder
        yield
        forwarder.closing = True
        transport.close()

    app.cleanup_ctx.append(redis_listener)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/readyz", readyz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    uvloop.install()
    web.run_app(build_app(args.redis_url), host="127.0.0.1", port=args.port, print=None,
                access_log=None, shutdown_timeout=2)


if __name__ == "__main__":
    main()
