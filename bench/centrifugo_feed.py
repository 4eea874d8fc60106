"""The storm's live feed for Centrifugo: the tick injector (bench/injector.py) with the same
pace, symbols, prices and publish log, whose ticks go to Centrifugo's server HTTP API
instead of Redis.

Guarantees: every pass of the injector that has ticks due sends them as ONE pipelined
`POST /api/batch` of `publish` commands over one keep-alive connection (opened again
when the server has closed it for being idle, before the next send), each to its
symbol's channel (bench/centrifugo.py) with the tick itself as the publication's data:
the JSON of `{symbol, data, seq, epoch, publishedAt}`, the same fields and values the
injector puts into Redis for tickwire (as msgpack there). Its `errors` counts answers
other than 200, commands answered with an error, and requests a closed connection left
unanswered. The pipe commands are the
injector's: ("prime",), ("rate", ticks_per_s), ("mark",), ("stop",).
"""

from __future__ import annotations

import socket

import hiredis
import msgpack
import orjson

from bench import centrifugo
from bench.injector import Injector


class CentrifugoFeed(Injector):
    """`port` is Centrifugo's HTTP port; the injector's socket to it carries the API calls."""

    def __init__(self, conn, host: str, port: int, symbols: list[str], weights: list[float],
                 epoch: str, seed: int):
        super().__init__(conn, host, port, symbols, weights, epoch, seed)
        self.host, self.port = host, port
        self.host_header = f"{host}:{port}"
        self.channels = {name: centrifugo.channel(name).encode() for name in symbols}
        self.answers = bytearray()
        self.unanswered = 0  # requests sent on this connection, not answered yet

    def _publish(self, indexes) -> None:
        (chunks,) = self._ticks(indexes).values()  # one port: Centrifugo's
        commands = b",".join(self._command(resp) for resp in chunks)
        body = b'{"commands":[' + commands + b"]}"
        head = (f"POST /api/batch HTTP/1.1\r\nHost: {self.host_header}\r\n"
                f"X-API-Key: {centrifugo.API_KEY}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self._drain_replies(self.socks[self.port])  # notices an idle close: a new socket
        self.socks[self.port].sendall(head + body)
        self.unanswered += 1
        self._drain_replies(self.socks[self.port])

    def _command(self, resp: bytes) -> bytes:
        """The `publish` command of one tick, from the injector's `SET` + `PUBLISH` of it."""
        reader = hiredis.Reader()
        reader.feed(resp)
        reader.gets()  # the SET
        tick = msgpack.unpackb(reader.gets()[2])
        return b'{"publish":{"channel":"' + self.channels[tick["symbol"]] + b'","data":' \
            + orjson.dumps(tick) + b"}}"

    def _closed(self, sock: socket.socket) -> None:
        """A new API connection in place of one the server closed (Go's idle timeout)."""
        sock.close()
        self.answers.clear()
        self.errors += self.unanswered
        self.unanswered = 0
        sock = socket.create_connection((self.host, self.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.socks[self.port] = sock

    def _replies(self, data: bytes) -> None:
        """Count the errors of every complete answer received, keep the incomplete rest."""
        answers = self.answers
        answers += data
        while (end := answers.find(b"\r\n\r\n")) >= 0:
            head = bytes(answers[:end]).lower()
            complete = http_body(head, answers, end + 4)
            if complete is None:
                return
            body, answer_end = complete
            if not head.startswith(b"http/1.1 200"):
                self.errors += 1
            self.errors += body.count(b'"error"')
            self.unanswered -= 1
            del answers[:answer_end]


def http_body(head: bytes, buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """The body of an HTTP/1.1 answer whose lower-cased `head` ends at `start` in `buffer`,
    and where the answer ends; None while part of it has still to come. Go's server sends
    a body that fits its buffer with Content-Length, a larger one (a batch of hundreds of
    replies) chunked."""
    if b"transfer-encoding: chunked" not in head:
        length = int(head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0]) \
            if b"content-length:" in head else 0
        end = start + length
        return (bytes(buffer[start:end]), end) if len(buffer) >= end else None
    chunks, at = [], start
    while (line_end := buffer.find(b"\r\n", at)) >= 0:
        size = int(bytes(buffer[at:line_end]).split(b";", 1)[0], 16)
        chunk_end = line_end + 2 + size
        if len(buffer) < chunk_end + 2:
            return None
        if size == 0:  # the last chunk (Go sends no trailers)
            return b"".join(chunks), chunk_end + 2
        chunks.append(bytes(buffer[line_end + 2:chunk_end]))
        at = chunk_end + 2
    return None


def main(conn, host: str, port: int, symbols: list[str], weights: list[float], epoch: str,
         seed: int) -> None:
    """Process entry point (multiprocessing, spawn)."""
    CentrifugoFeed(conn, host, port, symbols, weights, epoch, seed).run()
