"""A load-generator process: holds many client sockets that speak tickwire's protocol (or,
with `client_class`, another server's: bench/centrifugo_client.py) and records every
update they receive.

Each client is a bare asyncio Protocol with a minimal RFC 6455 client (masked frames out,
unmasked frames in, pings answered; with `deflate` it offers permessage-deflate as
Chromium does and inflates compressed frames, sending its own uncompressed) and parses every message in the
`data_received` callback: no task, future or queue per message, so the generator spends
as little CPU as possible per message and its own cost does not masquerade as the
server's. A client subscribes once (JSON by default, msgpack with the subprotocol) and
counts as connected when the `subscribed` ack arrives.

For every update (not snapshots) it records (client, symbol << 32 | seq, receive time in
Unix ns, taken once per socket read); the runner joins that with the injector's log of
`publishedAt`. Live counters: frames, updates, snapshots, symbols seen (client-symbol pairs
with an update: a live tick that beat the snapshot makes the snapshot redundant), seq
regressions (an update not newer than the last one of its symbol: the protocol says that
never happens), server errors, closes, and the bytes that came over the wire after the
handshake.

Commands from the runner (a multiprocessing pipe): ("connect",), ("mark",), ("finish",),
and ("first_updates",): per connected client, milliseconds from its connection attempt
to its first update (a snapshot or a live one), what a reconnecting user waits to see
prices again (the storm trial).
"""

from __future__ import annotations

import asyncio
import base64
import os
import resource
import struct
import time
import zlib
from array import array

import msgpack
import orjson
import uvloop

MSGPACK_SUBPROTOCOL = "tickwire.v1.msgpack"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
CHROMIUM_DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
DEFLATE_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 §7.2.2: removed by the sender, put back here


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked, final frame (RFC 6455 §5.3: clients mask everything they send)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    key = os.urandom(4)
    stream = (key * (size // 4 + 1))[:size]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(size, "big")
    return header + key + masked


class Stats:
    """Per process: the records and counters every client of this process adds to."""

    def __init__(self) -> None:
        self.rec_client = array("i")
        self.rec_key = array("q")
        self.rec_t = array("q")
        self.frames = 0
        self.updates = 0
        self.snapshots = 0
        self.symbols_seen = 0  # (client, symbol) pairs that got an update
        self.regressions = 0
        self.errors: dict[str, int] = {}
        self.closed_by_server: dict[str, int] = {}
        self.lost = 0
        self.wire_bytes = 0

    def take_records(self) -> tuple[bytes, bytes, bytes]:
        out = (self.rec_client.tobytes(), self.rec_key.tobytes(), self.rec_t.tobytes())
        self.rec_client, self.rec_key, self.rec_t = array("i"), array("q"), array("q")
        return out

    def counters(self) -> dict:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {"frames": self.frames, "updates": self.updates, "snapshots": self.snapshots,
                "symbols_seen": self.symbols_seen, "regressions": self.regressions,
                "errors": dict(self.errors),
                "closed_by_server": dict(self.closed_by_server), "lost": self.lost,
                "wire_bytes": self.wire_bytes,
                "cpu_s": usage.ru_utime + usage.ru_stime}


class Client(asyncio.Protocol):
    """One socket speaking tickwire's protocol. Another protocol (bench/centrifugo_client.py)
    subclasses it and replaces `PATH`, `_subscribe` and `_message`."""

    PATH = "/ws"  # the WebSocket endpoint

    def __init__(self, ident: int, symbols: list[str], index: dict[str, int], binary: bool,
                 host: str, port: int, stats: Stats, ready: asyncio.Future,
                 max_hz: float | None = None, deflate: bool = False):
        self.ident = ident
        self.deflate = deflate
        # One inflater for the connection: valid whether or not the server keeps context.
        self.inflater: zlib._Decompress | None = None
        self.max_hz = max_hz
        self.symbols = symbols
        self.index = index
        self.binary = binary
        self.host = host
        self.port = port
        self.stats = stats
        self.ready = ready
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.closing = False
        self.buf = bytearray()
        self.fragments: list[bytes] = []
        self.fragment_opcode = OP_TEXT
        self.fragment_compressed = False
        self.last: dict[int, int] = {}
        self.began_ns = 0  # the connection attempt's start
        self.first_update_ns = 0

    # -- handshake ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {self.PATH} HTTP/1.1", f"Host: {self.host}:{self.port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        if self.binary:
            lines.append(f"Sec-WebSocket-Protocol: {MSGPACK_SUBPROTOCOL}")
        if self.deflate:
            lines.append(f"Sec-WebSocket-Extensions: {CHROMIUM_DEFLATE_OFFER}")
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def _upgrade(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        status = bytes(self.buf[:self.buf.find(b"\r\n")])
        if b" 101 " not in status:
            self._fail(f"handshake refused: {status.decode(errors='replace')}")
            return False
        if b"permessage-deflate" in bytes(self.buf[:end]).lower():
            self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        del self.buf[:end + 4]
        self.upgraded = True
        self._subscribe()
        return True

    def _subscribe(self) -> None:
        """Right after the handshake: ask for every symbol of this client."""
        message = {"action": "subscribe", "symbols": self.symbols}
        if self.max_hz:
            message["maxHz"] = self.max_hz
        if self.binary:
            self.transport.write(client_frame(OP_BINARY, msgpack.packb(message)))
        else:
            self.transport.write(client_frame(OP_TEXT, orjson.dumps(message)))

    def subscribed(self) -> bool:
        ready = self.ready
        return ready.done() and not ready.cancelled() and ready.exception() is None

    def _fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))
        if self.transport is not None:
            self.transport.abort()

    # -- frames ---------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        buf = self.buf
        buf += data
        if not self.upgraded:
            if not self._upgrade():
                return
            self.stats.wire_bytes += len(buf)
        else:
            self.stats.wire_bytes += len(data)
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, header = b1 & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, header = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, header = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            if b1 & 0x80:
                self._fail("server sent a masked frame")
                return
            end = pos + header + length
            if end > size:
                break
            payload = bytes(buf[pos + header:end])
            pos = end
            opcode = b0 & 0x0F
            if not b0 & 0x80:  # a fragment: keep until the final one
                self.fragments.append(payload)
                if opcode:
                    self.fragment_opcode = opcode
                    self.fragment_compressed = bool(b0 & 0x40)
                continue
            compressed = b0 & 0x40
            if opcode == OP_CONTINUATION:
                payload = b"".join(self.fragments) + payload
                opcode, self.fragments = self.fragment_opcode, []
                compressed = self.fragment_compressed
            if compressed:
                payload = self.inflater.decompress(payload + DEFLATE_TAIL)
            self._frame(opcode, payload, now)
        del buf[:pos]

    def _frame(self, opcode: int, payload: bytes, now: int) -> None:
        if opcode == OP_TEXT or opcode == OP_BINARY:
            self.stats.frames += 1
            self._message(payload, now)
        elif opcode == OP_PING:
            self.transport.write(client_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            code = str(int.from_bytes(payload[:2], "big")) if len(payload) >= 2 else "none"
            self.stats.closed_by_server[code] = self.stats.closed_by_server.get(code, 0) + 1
            self.closing = True
            self.transport.write(client_frame(OP_CLOSE, payload[:2]))
            self.transport.close()

    def _message(self, payload: bytes, now: int) -> None:
        """One text or binary message of the server's."""
        message = msgpack.unpackb(payload) if self.binary else orjson.loads(payload)
        kind = message.get("type")
        if kind == "price_update":
            self._update(message, now)
        elif kind == "batch_update":
            for update in message["updates"]:
                self._update(update, now)
        elif kind == "subscribed":
            if not self.ready.done():
                self.ready.set_result(now)
        elif kind == "error":
            code = str(message.get("code"))
            self.stats.errors[code] = self.stats.errors.get(code, 0) + 1

    def _update(self, update: dict, now: int) -> None:
        if not self.first_update_ns:
            self.first_update_ns = now
        symbol = self.index[update["symbol"]]
        seq = update["seq"]
        last = self.last.get(symbol)
        if last is None:  # this symbol's first update on this client, snapshot or live
            self.stats.symbols_seen += 1
            last = 0
        if update.get("snapshot"):
            self.stats.snapshots += 1
            if seq > last:
                self.last[symbol] = seq
            return
        stats = self.stats
        stats.updates += 1
        if seq <= last:
            stats.regressions += 1
        else:
            self.last[symbol] = seq
        stats.rec_client.append(self.ident)
        stats.rec_key.append(symbol << 32 | seq)
        stats.rec_t.append(now)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before subscribed: {exc!r}"))
        elif not self.closing:
            self.stats.lost += 1

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.closing = True
            self.transport.write(client_frame(OP_CLOSE, struct.pack("!H", 1000)))
            self.transport.close()


class Loader:
    def __init__(self, conn, host: str, port: int, clients: list[tuple[int, list[str]]],
                 symbols: list[str], binary: bool, concurrency: int, max_hz: float | None,
                 deflate: bool = False, client_class: type[Client] = Client):
        self.conn = conn
        self.client_class = client_class
        self.deflate = deflate
        self.max_hz = max_hz
        self.host = host
        self.port = port
        self.specs = clients
        self.index = {name: i for i, name in enumerate(symbols)}
        self.binary = binary
        self.concurrency = concurrency
        self.stats = Stats()
        self.clients: list[Client] = []
        self.done: asyncio.Future | None = None

    async def run(self) -> None:
        # The pipe is polled, not watched with add_reader: that would make it non-blocking
        # and a large `mark` answer would then fail half-written.
        self.done = asyncio.get_running_loop().create_future()
        self.conn.send(("ready", os.getpid()))
        while not self.done.done():
            if self.conn.poll():
                self._command()
            else:
                await asyncio.sleep(0.02)

    def _command(self) -> None:
        command = self.conn.recv()
        if command[0] == "connect":
            asyncio.get_running_loop().create_task(self._connect_all())
        elif command[0] == "first_updates":
            self.conn.send(("first_updates", [(c.first_update_ns - c.began_ns) / 1e6
                                              for c in self.clients
                                              if c.first_update_ns and c.subscribed()]))
        elif command[0] == "mark":
            self.conn.send(("mark", *self.stats.take_records(), self.stats.counters()))
        elif command[0] == "finish":
            for client in self.clients:
                client.close()
            self.conn.send(("mark", *self.stats.take_records(), self.stats.counters()))
            self.done.set_result(None)

    async def _open(self, client: Client, ready: asyncio.Future) -> int:
        """Connect `client` and wait for its `subscribed` ack; the ack's receive time."""
        await asyncio.get_running_loop().create_connection(lambda: client, self.host, self.port)
        self.clients.append(client)
        return await ready

    async def _connect_all(self) -> None:
        """Handshake + subscribe every client, `concurrency` at a time."""
        loop = asyncio.get_running_loop()
        started = time.time_ns()
        gate = asyncio.Semaphore(self.concurrency)
        durations: list[float] = []
        failures: dict[str, int] = {}
        connected: list[int] = []

        async def one(ident: int, symbols: list[str]) -> None:
            async with gate:
                begin = time.time_ns()
                ready = loop.create_future()
                client = self.client_class(ident, symbols, self.index, self.binary, self.host,
                                           self.port, self.stats, ready, self.max_hz,
                                           self.deflate)
                client.began_ns = begin
                try:
                    # One bound for the whole attempt, the TCP connect included (a
                    # dropped SYN is retried by the kernel, not failed).
                    at = await asyncio.wait_for(self._open(client, ready), 30)
                except (OSError, ConnectionError, asyncio.TimeoutError) as exc:
                    reason = type(exc).__name__ + (f": {exc}"[:80] if str(exc) else "")
                    failures[reason] = failures.get(reason, 0) + 1
                    if client.transport is not None:
                        client.transport.abort()
                    return
                durations.append((at - begin) / 1e6)
                connected.append(ident)

        await asyncio.gather(*(one(ident, symbols) for ident, symbols in self.specs))
        self.clients = [c for c in self.clients if c.subscribed()]
        self.conn.send(("connected", {"started_ns": started, "finished_ns": time.time_ns(),
                                      "connected": connected, "failures": failures,
                                      "handshake_ms": durations}))


def main(conn, host: str, port: int, clients: list[tuple[int, list[str]]], symbols: list[str],
         binary: bool, concurrency: int, max_hz: float | None = None,
         deflate: bool = False, client_class: type[Client] = Client) -> None:
    """Process entry point (multiprocessing, spawn). `client_class` is the protocol the
    sockets speak: tickwire's `Client` or a subclass of it."""
    uvloop.install()
    asyncio.run(Loader(conn, host, port, clients, symbols, binary, concurrency, max_hz,
                       deflate, client_class).run())
