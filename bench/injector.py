"""The tick injector: publishes ticks straight into Redis at a fixed aggregate rate, as the
ingestor would (`SET quote:{SYMBOL}` + `PUBLISH market-data:updates:{SYMBOL}`, msgpack
`{symbol, data, seq, epoch, publishedAt}`; on a Redis Cluster `SPUBLISH`, each tick to the
primary of its symbol's slot), so the server, not the providers, is measured.

It runs in its own process and speaks RESP over a raw socket, pipelining every tick that
is due in one write per millisecond: a redis-py client here would cost more CPU than the
Redis server itself on a small machine. Every tick's `publishedAt` is logged and handed
to the runner, which joins it with what the clients received.

Commands from the runner (a multiprocessing pipe): ("prime",) publishes seq 1 of every
symbol (the cache then holds a snapshot for each); ("rate", ticks_per_s); ("mark",) and
("stop",) answer with the ticks published since the previous mark.
"""

from __future__ import annotations

import os
import random
import socket
import struct
import time
from array import array
from datetime import datetime, timezone

import hiredis
import msgpack
import numpy as np

from tickwire.core import names
from tickwire.core.codecs import decode_tick

MAX_BATCH = 5000  # ticks per write at most, so a stall is caught up in bounded bursts


def _bulk(part: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(part), part)


SEQ_PLACEHOLDER = 2**31  # msgpack packs it as uint32 (0xce + 4 bytes): patchable in place
TIME_PLACEHOLDER = 2**63  # uint64 (0xcf + 8 bytes)
TEMPLATE_REFRESHES = 8  # templates rebuilt per pass (~8,000/s at most; ~13 us each)


class _Symbol:
    """A symbol's market state and its tick template: the RESP of `SET` + `PUBLISH` of a
    msgpack tick whose `seq` and `publishedAt` are fixed-width, so that a tick is a copy
    with four fields patched (~1 us) instead of a fresh encoding (~8 us): at 50,000
    ticks/s the injector must leave the CPUs to what is measured."""

    __slots__ = ("name", "set_prefix", "pub_prefix", "seq", "cents", "open", "previous_close",
                 "percent_per_cent", "high", "low", "volume", "template", "seq_at", "time_at")

    def __init__(self, name: str, rng: random.Random, publish: bytes = b"PUBLISH"):
        self.name = name
        self.set_prefix = b"*3\r\n$3\r\nSET\r\n" + _bulk(names.quote_key(name).encode())
        self.pub_prefix = b"*3\r\n" + _bulk(publish) + _bulk(names.tick_channel(name).encode())
        self.seq = 0
        self.cents = rng.randrange(2_000, 90_000)  # the price in integer cents: no rounding
        self.previous_close = self.open = self.high = self.low = self.cents / 100
        self.percent_per_cent = 1 / self.previous_close  # change in cents -> change %
        self.volume = rng.randrange(100_000, 5_000_000)
        self.template = bytearray()
        self.seq_at: tuple[int, int] = (0, 0)
        self.time_at: tuple[int, int] = (0, 0)

    def rebuild(self, packer: msgpack.Packer, epoch: str, step_cents: int, volume_step: int,
                timestamp: str) -> None:
        """A new price (one random-walk step) in a new template."""
        self.cents = max(1, self.cents + step_cents)
        price = self.cents / 100
        self.high, self.low = max(self.high, price), min(self.low, price)
        self.volume += volume_step
        change = price - self.previous_close
        payload = packer.pack({
            "symbol": self.name,
            "data": {"symbol": self.name, "price": price, "change": round(change, 2),
                     "changePercent": round(change * 100 * self.percent_per_cent, 4),
                     "volume": self.volume, "high": self.high, "low": self.low,
                     "open": self.open, "previousClose": self.previous_close,
                     "timestamp": timestamp, "source": "bench"},
            "seq": SEQ_PLACEHOLDER, "epoch": epoch, "publishedAt": TIME_PLACEHOLDER,
        })
        seq_in_payload = payload.index(b"\xa3seq\xce") + 5
        time_in_payload = len(payload) - 8  # publishedAt is the last field
        first = len(self.set_prefix) + len(b"$%d\r\n" % len(payload))
        second = first + len(payload) + 2 + len(self.pub_prefix) + len(b"$%d\r\n" % len(payload))
        self.template = bytearray(self.set_prefix + _bulk(payload) + self.pub_prefix + _bulk(payload))
        self.seq_at = (first + seq_in_payload, second + seq_in_payload)
        self.time_at = (first + time_in_payload, second + time_in_payload)

    def tick(self, now: int) -> bytes:
        """The RESP of the next tick (cache it, then publish it), published at `now`."""
        self.seq += 1
        template = self.template
        for at in self.seq_at:
            _pack_seq(template, at, self.seq)
        for at in self.time_at:
            _pack_time(template, at, now)
        return bytes(template)


_pack_seq = struct.Struct(">I").pack_into
_pack_time = struct.Struct(">Q").pack_into


class Injector:
    """`ports`, when given, names the Redis Cluster primary of each symbol's slot: ticks
    then go there with `SPUBLISH` (sharded Pub/Sub, as the ingestor does in cluster mode)."""

    def __init__(self, conn, host: str, port: int, symbols: list[str], weights: list[float],
                 epoch: str, seed: int, ports: list[int] | None = None):
        self.conn = conn
        self.ports = ports or [port] * len(symbols)
        self.socks = {}
        for each in dict.fromkeys(self.ports):
            self.socks[each] = socket.create_connection((host, each))
            self.socks[each].setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        verb = b"SPUBLISH" if ports else b"PUBLISH"
        self.symbols = [_Symbol(name, self.rng, verb) for name in symbols]
        self.weights = np.asarray(weights, dtype=float)
        self.epoch = epoch
        self.picks: list[int] = []
        self.log_key = array("q")  # symbol index << 32 | seq
        self.log_t = array("q")  # publishedAt, Unix ns
        self.errors = 0
        self.iso_second = -1
        self.iso_prefix = ""
        self.steps: list[int] = []
        self.volumes: list[int] = []
        self.packer = msgpack.Packer()
        for index in range(len(self.symbols)):
            self._refresh(index)

    def _iso(self, now_ns: int) -> str:
        second, rest = divmod(now_ns, 1_000_000_000)
        if second != self.iso_second:
            self.iso_second = second
            self.iso_prefix = datetime.fromtimestamp(second, tz=timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%S.")
        return f"{self.iso_prefix}{rest // 1_000_000:03d}Z"

    def _pick(self) -> int:
        if not self.picks:
            self._draw()
        return self.picks.pop()

    def _draw(self, count: int = 65536) -> None:
        """Random numbers in bulk (numpy): which symbol ticks, its price step in cents and
        its volume step. Drawing them one by one cost more than the rest of a tick."""
        rng = self.np_rng
        self.picks = rng.choice(len(self.symbols), count, p=self.weights).tolist()
        self.steps = np.rint(rng.normal(0, 3, count)).astype(np.int64).tolist()
        self.volumes = rng.integers(1, 500, count).tolist()

    def _refresh(self, index: int) -> None:
        if not self.steps:
            self._draw()
        self.symbols[index].rebuild(self.packer, self.epoch, self.steps.pop(),
                                    self.volumes.pop(), self._iso(time.time_ns()))

    def _ticks(self, indexes) -> dict[int, list[bytes]]:
        """The RESP of the ticks due, by the port they go to."""
        now = time.time_ns()  # one publish time for every tick in this write
        symbols, log_key, ports = self.symbols, self.log_key, self.ports
        chunks: dict[int, list[bytes]] = {}
        count = 0
        for index in indexes:
            symbol = symbols[index]
            chunks.setdefault(ports[index], []).append(symbol.tick(now))
            log_key.append(index << 32 | symbol.seq)
            count += 1
        self.log_t.extend([now] * count)
        return chunks

    def _publish(self, indexes) -> None:
        for port, chunks in self._ticks(indexes).items():
            self.socks[port].sendall(b"".join(chunks))
        for sock in self.socks.values():
            self._drain_replies(sock)

    def _drain_replies(self, sock: socket.socket) -> None:
        """Whatever the server has answered so far, without waiting, to `_replies`."""
        while True:
            try:
                data = sock.recv(1 << 20, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            if not data:
                self._closed(sock)
                return
            self._replies(data)

    def _replies(self, data: bytes) -> None:
        self.errors += data.count(b"-ERR") + data.count(b"-WRONG") + data.count(b"-MOVED")

    def _closed(self, sock: socket.socket) -> None:
        raise ConnectionError("redis closed the connection")

    def _mark(self) -> tuple:
        keys, times = self.log_key, self.log_t
        self.log_key, self.log_t = array("q"), array("q")
        cpu = os.times()
        return ("mark", keys.tobytes(), times.tobytes(), self.errors, cpu.user + cpu.system)

    def _check_shape(self) -> None:
        """A patched template must decode as the contract's tick, or fail loudly."""
        reader = hiredis.Reader()
        now = time.time_ns()
        reader.feed(self.symbols[0].tick(now))
        cache, publish = reader.gets(), reader.gets()
        tick = decode_tick(publish[2])
        if cache[2] != publish[2] or (tick.seq, tick.published_at) != (1, now):
            raise RuntimeError(f"tick template patched wrongly: {tick}")
        self.symbols[0].seq = 0

    def run(self) -> None:
        self._check_shape()
        rate, started, sent = 0.0, time.perf_counter(), 0
        while True:
            if self.conn.poll():
                command = self.conn.recv()
                if command[0] == "prime":
                    self._publish(range(len(self.symbols)))
                    self.conn.send(("primed",))
                elif command[0] == "rate":
                    rate, started, sent = float(command[1]), time.perf_counter(), 0
                elif command[0] == "mark":
                    self.conn.send(self._mark())
                elif command[0] == "stop":
                    self.conn.send(self._mark())
                    for sock in self.socks.values():
                        sock.close()
                    return
            pause = 0.01
            if rate > 0:
                due = min(MAX_BATCH, int((time.perf_counter() - started) * rate) - sent)
                if due > 0:
                    picked = [self._pick() for _ in range(due)]
                    self._publish(picked)
                    sent += due
                    # The symbols that ticked move their price for next time (a few per
                    # pass: at high rates a price holds for a handful of ticks).
                    for index in picked[:TEMPLATE_REFRESHES]:
                        self._refresh(index)
                next_due = started + (sent + 1) / rate - time.perf_counter()
                pause = min(0.01, max(0.001, next_due))
            time.sleep(pause)


def main(conn, host: str, port: int, symbols: list[str], weights: list[float], epoch: str,
         seed: int, ports: list[int] | None = None) -> None:
    """Process entry point (multiprocessing, spawn)."""
    Injector(conn, host, port, symbols, weights, epoch, seed, ports).run()
