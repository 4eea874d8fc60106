"""The tick injector: publishes ticks straight into Redis at a fixed aggregate rate, as the
ingestor would (`SET quote:{SYMBOL}` + `PUBLISH market-data:updates:{SYMBOL}`, msgpack
`{symbol, data, seq, epoch, publishedAt}`), so the server, not the providers, is measured.

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
import time
from array import array
from datetime import datetime, timezone

import msgpack
import numpy as np

from tickwire.core import names
from tickwire.core.codecs import decode_tick

MAX_BATCH = 5000  # ticks per write at most, so a stall is caught up in bounded bursts


def _bulk(part: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(part), part)


class _Symbol:
    __slots__ = ("name", "set_prefix", "pub_prefix", "seq", "cents", "open", "previous_close",
                 "percent_per_cent", "high", "low", "volume")

    def __init__(self, name: str, rng: random.Random):
        self.name = name
        self.set_prefix = b"*3\r\n$3\r\nSET\r\n" + _bulk(names.quote_key(name).encode())
        self.pub_prefix = b"*3\r\n$7\r\nPUBLISH\r\n" + _bulk(names.tick_channel(name).encode())
        self.seq = 0
        self.cents = rng.randrange(2_000, 90_000)  # the price in integer cents: no rounding
        self.previous_close = self.open = self.high = self.low = self.cents / 100
        self.percent_per_cent = 1 / self.previous_close  # change in cents -> change %
        self.volume = rng.randrange(100_000, 5_000_000)


class Injector:
    def __init__(self, conn, host: str, port: int, symbols: list[str], weights: list[float],
                 epoch: str, seed: int):
        self.conn = conn
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        self.symbols = [_Symbol(name, self.rng) for name in symbols]
        self.weights = np.asarray(weights, dtype=float)
        self.epoch = epoch
        self.picks: list[int] = []
        self.log_key = array("q")  # symbol index << 32 | seq
        self.log_t = array("q")  # publishedAt, Unix ns
        self.errors = 0
        self.iso_second = self.iso_ms = -1
        self.iso_prefix = self.iso_text = ""
        self.steps: list[int] = []
        self.volumes: list[int] = []
        self.packer = msgpack.Packer()

    def _iso(self, now_ns: int) -> str:
        """ISO 8601 UTC with milliseconds, formatted once per millisecond."""
        ms = now_ns // 1_000_000
        if ms != self.iso_ms:
            second, rest = divmod(ms, 1000)
            if second != self.iso_second:
                self.iso_second = second
                self.iso_prefix = datetime.fromtimestamp(second, tz=timezone.utc).strftime(
                    "%Y-%m-%dT%H:%M:%S.")
            self.iso_ms, self.iso_text = ms, f"{self.iso_prefix}{rest:03d}Z"
        return self.iso_text

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

    def _payload(self, index: int) -> bytes:
        s = self.symbols[index]
        if not self.steps:
            self._draw()
        s.seq += 1
        s.cents = max(1, s.cents + self.steps.pop())
        price = s.cents / 100
        if price > s.high:
            s.high = price
        elif price < s.low:
            s.low = price
        s.volume += self.volumes.pop()
        now = time.time_ns()
        change = price - s.previous_close
        payload = self.packer.pack({
            "symbol": s.name,
            "data": {"symbol": s.name, "price": price, "change": round(change, 2),
                     "changePercent": round(change * 100 * s.percent_per_cent, 4),
                     "volume": s.volume, "high": s.high, "low": s.low, "open": s.open,
                     "previousClose": s.previous_close, "timestamp": self._iso(now),
                     "source": "bench"},
            "seq": s.seq, "epoch": self.epoch, "publishedAt": now,
        })
        self.log_key.append(index << 32 | s.seq)
        self.log_t.append(now)
        return payload

    def _tick(self, index: int) -> bytes:
        """The RESP of one tick: cache it, then publish it."""
        s = self.symbols[index]
        body = _bulk(self._payload(index))
        return s.set_prefix + body + s.pub_prefix + body

    def _publish(self, indexes) -> None:
        self.sock.sendall(b"".join([self._tick(i) for i in indexes]))
        self._drain_replies()

    def _drain_replies(self) -> None:
        while True:
            try:
                data = self.sock.recv(1 << 20, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            if not data:
                raise ConnectionError("redis closed the connection")
            self.errors += data.count(b"-ERR") + data.count(b"-WRONG")

    def _mark(self) -> tuple:
        keys, times = self.log_key, self.log_t
        self.log_key, self.log_t = array("q"), array("q")
        cpu = os.times()
        return ("mark", keys.tobytes(), times.tobytes(), self.errors, cpu.user + cpu.system)

    def run(self) -> None:
        decode_tick(self._payload(0))  # the contract's tick shape, or fail loudly
        self.symbols[0].seq = 0
        self.log_key, self.log_t = array("q"), array("q")
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
                    self.sock.close()
                    return
            pause = 0.01
            if rate > 0:
                due = min(MAX_BATCH, int((time.perf_counter() - started) * rate) - sent)
                if due > 0:
                    self._publish([self._pick() for _ in range(due)])
                    sent += due
                next_due = started + (sent + 1) / rate - time.perf_counter()
                pause = min(0.01, max(0.001, next_due))
            time.sleep(pause)


def main(conn, host: str, port: int, symbols: list[str], weights: list[float], epoch: str,
         seed: int) -> None:
    """Process entry point (multiprocessing, spawn)."""
    Injector(conn, host, port, symbols, weights, epoch, seed).run()
