"""One Redis Pub/Sub connection on a raw asyncio Protocol, its replies parsed by hiredis.

Why not redis-py's PubSub: `get_message()` costs an await and ~100 µs of Python per
message, which held one edge near 8,000 ticks/s. Here each socket read is parsed in C
and its messages are handed to `on_message` synchronously, in order, inside
`data_received`: what a read carried is dispatched together, and the edge writes all
the frames due to one socket with one system call.

Bounded passes: one pass hands over messages for at most DISPATCH_BUDGET; what is left
waits in the parser for the next pass (in order, before anything read later), so a burst
of ticks does not hold up timers, pings, handshakes and other sockets for longer. While
some wait, the socket is not read: a subscriber that cannot keep up leaves the backlog
in Redis, whose pub/sub output limit cuts it off (then it reconnects), rather than in
this process. A connection that ends drops what was still waiting.

SUBSCRIBE waits for Redis to confirm each channel: once `subscribe()` returns, every
later publish on those channels reaches this connection (a cache read made after it
cannot miss a tick in between). The sharded forms (SSUBSCRIBE on a Redis Cluster node,
see `shardedbus`) give the same guarantee per channel; a channel the server drops by
itself (its slot moved or its node stopped serving it) is reported to `on_dropped`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import hiredis

from tickwire.core.resp import command, credentials, open_connection

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]
DropHandler = Callable[[str], None]

DISPATCH_BUDGET = 0.001  # seconds of message handling in one event-loop pass


class SubscriberConnection(asyncio.Protocol):
    """Open with `await SubscriberConnection.open(...)`; `closed` resolves when the
    connection ends, by `close()` or because it was lost."""

    def __init__(self, on_message: MessageHandler | None, on_dropped: DropHandler | None = None):
        self._on_message = on_message
        self._on_dropped = on_dropped
        self._reader = hiredis.Reader()
        self._transport: asyncio.Transport | None = None
        self._confirmations: dict[bytes, deque[asyncio.Future]] = {}
        # SSUBSCRIBEs in the order sent: a refusal (-MOVED) answers the oldest one.
        self._sharded: deque[tuple[bytes, asyncio.Future]] = deque()
        self._leaving: set[bytes] = set()  # SUNSUBSCRIBEd by us: their pushes are expected
        self._replies: deque[asyncio.Future] = deque()  # AUTH, PING, in order sent
        self._resuming = False  # a pass that goes on with what the parser holds is due;
        # reading is paused meanwhile
        self._lost = False
        self.closed: asyncio.Future = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, connection_kwargs: dict[str, Any], connection_class: type,
                   on_message: MessageHandler | None, timeout: float,
                   on_dropped: DropHandler | None = None) -> SubscriberConnection:
        """Connect as the redis-py pool described by `connection_kwargs` would (host and
        port or a Unix socket path, TLS, AUTH with username and password)."""
        conn = await open_connection(lambda: cls(on_message, on_dropped), connection_kwargs,
                                     connection_class, timeout)
        try:
            if auth := credentials(connection_kwargs):
                await asyncio.wait_for(conn._ask(b"AUTH", *auth), timeout)
        except BaseException:
            conn.close()
            raise
        return conn

    # -- commands ---------------------------------------------------------------------

    async def subscribe(self, channels: Iterable[str]) -> None:
        """Returns once Redis confirmed every channel."""
        loop = asyncio.get_running_loop()
        encoded = [c.encode() for c in channels]
        if not encoded:
            return
        waiters = []
        for channel in encoded:
            waiter = loop.create_future()
            self._confirmations.setdefault(channel, deque()).append(waiter)
            waiters.append(waiter)
        self._send(command(b"SUBSCRIBE", *encoded))
        await asyncio.gather(*waiters)

    def unsubscribe(self, channels: Iterable[str]) -> None:
        """Nothing to wait for: a message already on its way is dropped by the caller."""
        encoded = [c.encode() for c in channels]
        if encoded:
            self._send(command(b"UNSUBSCRIBE", *encoded))

    def ssubscribe(self, channel: str) -> asyncio.Future:
        """A future resolved once the node confirmed `channel`, or failed with
        ConnectionRefusedError when it refused (e.g. -MOVED: the slot lives elsewhere)."""
        encoded = channel.encode()
        waiter = asyncio.get_running_loop().create_future()
        self._send(command(b"SSUBSCRIBE", encoded))
        self._leaving.discard(encoded)
        self._sharded.append((encoded, waiter))
        return waiter

    def sunsubscribe(self, channel: str) -> None:
        encoded = channel.encode()
        self._leaving.add(encoded)
        self._send(command(b"SUNSUBSCRIBE", encoded))

    async def ping(self) -> None:
        """Answered after every message that was queued before it: a live reader."""
        await self._ask(b"PING")

    def close(self) -> None:
        self._lost = True  # nothing more is handed over, not even what was read already
        if self._transport is not None:
            self._transport.close()

    def _ask(self, *parts: bytes) -> asyncio.Future:
        waiter = asyncio.get_running_loop().create_future()
        self._replies.append(waiter)
        self._send(command(*parts))
        return waiter

    def _send(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise ConnectionResetError("redis subscriber connection closed")
        self._transport.write(data)

    # -- the protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        if not self._resuming:
            self._dispatch()

    def _dispatch(self) -> None:
        """Hand over what the parser holds, in order, until DISPATCH_BUDGET is spent; the
        rest goes on in the next pass with reading paused, resumed once nothing is left."""
        if self._lost:
            return
        continued, self._resuming = self._resuming, False
        reader = self._reader
        on_message = self._on_message
        clock = time.perf_counter
        deadline = clock() + DISPATCH_BUDGET
        try:
            while (reply := reader.gets()) is not False:
                if type(reply) is list and (reply[0] == b"message" or reply[0] == b"smessage"):
                    if on_message is not None:
                        try:
                            on_message(reply[1].decode(), reply[2])
                        except Exception:  # one bad message must not end the stream
                            log.exception("pub/sub message handler failed")
                else:
                    self._reply(reply)
                if clock() > deadline:
                    self._resuming = True
                    if not continued:
                        self._transport.pause_reading()
                    asyncio.get_running_loop().call_soon(self._dispatch)
                    return
        except hiredis.ProtocolError as exc:
            log.error("redis protocol error; reconnecting", extra={"error": str(exc)})
            self._transport.abort()
            return
        if continued:
            self._transport.resume_reading()

    def _reply(self, reply: Any) -> None:
        if type(reply) is list and reply[0] == b"subscribe":
            waiters = self._confirmations.get(reply[1])
            if waiters:
                waiter = waiters.popleft()
                if not waiters:
                    del self._confirmations[reply[1]]
                if not waiter.done():
                    waiter.set_result(None)
        elif type(reply) is list and reply[0] == b"unsubscribe":
            pass  # nothing waits for it
        elif type(reply) is list and reply[0] == b"ssubscribe":
            if self._sharded and self._sharded[0][0] == reply[1]:
                _, waiter = self._sharded.popleft()
                if not waiter.done():
                    waiter.set_result(None)
        elif type(reply) is list and reply[0] == b"sunsubscribe":
            if reply[1] in self._leaving:
                self._leaving.discard(reply[1])
            elif self._on_dropped is not None:
                self._on_dropped(reply[1].decode())
        elif self._sharded and isinstance(reply, hiredis.ReplyError):
            _, waiter = self._sharded.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionRefusedError(f"redis: {reply}"))
        elif self._replies:  # +OK to AUTH, ["pong", ""] to PING, or an error
            waiter = self._replies.popleft()
            if waiter.done():
                return
            if isinstance(reply, hiredis.ReplyError):
                waiter.set_exception(ConnectionRefusedError(f"redis: {reply}"))
            else:
                waiter.set_result(reply)
        elif isinstance(reply, hiredis.ReplyError):  # e.g. a SUBSCRIBE refused by an ACL
            log.error("redis refused a pub/sub command", extra={"error": str(reply)})
            self._fail_all(ConnectionRefusedError(f"redis: {reply}"))
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._fail_all(ConnectionResetError(f"redis subscriber connection lost: {exc!r}"))
        if not self.closed.done():
            self.closed.set_result(exc)

    def _fail_all(self, exc: Exception) -> None:
        waiters = [w for queue in self._confirmations.values() for w in queue]
        waiters.extend(self._replies)
        waiters.extend(w for _, w in self._sharded)
        self._confirmations.clear()
        self._replies.clear()
        self._sharded.clear()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(exc)
