"""Where a session's frames go: a WebSocket, or a Server-Sent Events response.

Guarantees: every sink speaks the whole `Sink` protocol a session uses. `write` returns
once the transport can take more, waiting on the transport's own pause/resume (drain)
signal, never on a timer; `close` never raises and never waits on a peer that does not
read for more than a moment.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from aiohttp import WSCloseCode, WSMsgType, web

from tickwire.edge.deflate import shares_frames
from tickwire.edge.frames import deflated, websocket_frame

DIRECT_WRITE_LIMIT = 64 * 1024  # bytes a transport may hold before writes go the slow way
# Messages compressed on the event loop; aiohttp compresses larger ones in a thread.
INLINE_DEFLATE_LIMIT = 16 * 1024
PING_FRAME = b"\x89\x00"  # final, ping, no payload (RFC 6455 §5.5.2; never compressed)
TOKEN_EXPIRED = 4001  # the close code of a socket whose token lapsed unrefreshed


class Sink(Protocol):
    binary: bool
    batching: bool  # several updates may share one frame (`batch_update`)
    answers_pings: bool  # silence after pings means the peer is gone
    direct: bool  # pre-built frames may go straight to the transport (`write_now`)
    deflate: bool  # those frames must be the compressed ones (permessage-deflate)

    def can_write_now(self) -> bool:
        """Whether `write_now` would not queue up behind a peer that does not read."""
    def write_now(self, frames: bytes | list[bytes]) -> None:
        """Write pre-built frames synchronously (only where `direct`)."""
    def prebuilt(self, payload: bytes) -> bytes | None:
        """The whole wire frame of one message for `write_now`, or None where it must take
        the slow way (`write`)."""
    def prebuilt_ping(self) -> bytes | None:
        """A ping's wire frame for `write_now`, or None where `ping` must send it."""
    async def write(self, frame: bytes) -> None: ...
    def lost(self) -> None:
        """A write failed: the peer is gone."""
    async def ping(self) -> None: ...
    async def close(self, code: int, reason: str) -> None: ...


async def drained(protocol) -> None:
    """Returns when the transport under aiohttp's `protocol` has room again: the
    transport pauses the protocol above its high-water mark and resumes it below the
    low one. Shielded: aiohttp shares one drain waiter between all writers of a
    connection, and a cancelled writer must not cancel it for the others (the close)."""
    if protocol.transport is None:
        raise ConnectionResetError("socket closed")
    if protocol.writing_paused:
        await asyncio.shield(protocol._drain_helper())


def _limit_buffer(transport: asyncio.BaseTransport | None) -> None:
    """Pause the protocol once the transport holds DIRECT_WRITE_LIMIT bytes: the same
    line the fast path stops at."""
    if transport is not None:
        transport.set_write_buffer_limits(high=DIRECT_WRITE_LIMIT)


class WebSocketSink:
    batching = True
    answers_pings = True

    def __init__(self, ws: web.WebSocketResponse, binary: bool, request: web.Request):
        self.ws = ws
        self.binary = binary
        self._opcode = WSMsgType.BINARY if binary else WSMsgType.TEXT
        transport = request.transport
        self._transport = transport
        self._protocol = request.protocol
        _limit_buffer(transport)
        # Pre-built frames may bypass aiohttp's writer where they are what it would send:
        # uncompressed, or compressed without context takeover (see `deflate`).
        self.deflate = bool(ws.compress)
        self.direct = transport is not None and (not ws.compress or shares_frames(ws))

    def can_write_now(self) -> bool:
        """Whether pre-built frames can go straight to the transport without queueing
        up behind a peer that does not read."""
        transport = self._transport
        return (not transport.is_closing() and not self.ws.closed
                and transport.get_write_buffer_size() < DIRECT_WRITE_LIMIT)

    def write_now(self, frames: bytes | list[bytes]) -> None:
        if type(frames) is bytes:
            self._transport.write(frames)
        else:
            self._transport.writelines(frames)

    def prebuilt(self, payload: bytes) -> bytes | None:
        """The frame aiohttp's writer would send for `payload`, built here: None where
        this socket's frames are not ours to build, or compressing would hold the loop."""
        if not self.direct:
            return None
        if not self.deflate:
            return websocket_frame(payload, self.binary)
        if len(payload) > INLINE_DEFLATE_LIMIT:
            return None
        return websocket_frame(deflated(payload), self.binary, compressed=True)

    def prebuilt_ping(self) -> bytes | None:
        return PING_FRAME if self.direct else None

    async def write(self, frame: bytes) -> None:
        """Returns once the transport has room again: the time a peer that does not
        read keeps this waiting is what the sweep measures."""
        if self.ws.closed:
            raise ConnectionResetError("socket closed")
        prebuilt = self.prebuilt(frame)
        if prebuilt is None:
            await self.ws.send_frame(frame, self._opcode)
        elif self._transport.is_closing():
            raise ConnectionResetError("socket closing")
        else:
            self._transport.write(prebuilt)
        # aiohttp's own drain accounting does not see the pre-built frames written
        # around it, so wait on the transport's pause/resume signal.
        await drained(self._protocol)

    async def ping(self) -> None:
        if not self.ws.closed:
            await self.ws.ping()

    def lost(self) -> None:
        """The read loop sees the socket end by itself."""

    async def close(self, code: int, reason: str) -> None:
        """Close with `code`; a peer that does not read cannot take a close frame, so
        after a moment the TCP connection is aborted instead. Never raises."""
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=reason.encode()[:120]), 2.0)
        except asyncio.CancelledError:
            # aiohttp shares one drain waiter between writers: cancelling a session's
            # blocked writer cancels it for this close too. Only our own cancellation
            # is propagated.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            self._abort()
        except Exception:
            self._abort()

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


class _LossSignal(asyncio.Protocol):
    """Stands between a transport and aiohttp's protocol, forwarding everything, and sets
    `lost` when the connection ends: aiohttp does not cancel a streaming handler whose
    client left, and an SSE client sends nothing that a read could fail on."""

    def __init__(self, inner: asyncio.Protocol, lost: asyncio.Event):
        self._inner = inner
        self._lost = lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._inner.connection_lost(exc)
        finally:
            self._lost.set()


class SseSink:
    """Server-Sent Events: one `data:` event per message, the same JSON as the socket.
    `done` is set when the stream ends: closed by the edge, a failed write, or the client
    gone (seen the moment its connection drops, not at the next write)."""

    binary = False
    batching = False
    answers_pings = False
    direct = False
    deflate = False

    def __init__(self, response: web.StreamResponse, transport: asyncio.BaseTransport | None):
        self.response = response
        self._transport = transport
        self._closed = False
        self.done = asyncio.Event()
        if transport is not None:
            if transport.is_closing():
                self.done.set()
            else:
                transport.set_protocol(_LossSignal(transport.get_protocol(), self.done))

    def can_write_now(self) -> bool:
        return False

    def write_now(self, frames: bytes | list[bytes]) -> None:
        # Never reached: can_write_now() is False, so the session always queues for SSE.
        raise TypeError("an SSE stream takes no pre-built WebSocket frames")

    def prebuilt(self, payload: bytes) -> None:
        return None

    def prebuilt_ping(self) -> None:
        return None

    async def write(self, frame: bytes) -> None:
        if self._closed:
            raise ConnectionResetError("stream closed")
        await self.response.write(b"data: " + frame + b"\n\n")

    async def ping(self) -> None:
        await self.response.write(b": keep-alive\n\n")

    def lost(self) -> None:
        self._closed = True
        self.done.set()

    async def close(self, code: int, reason: str) -> None:
        self._closed = True
        # Ends the client should hear in full (the edge going away, the token lapsed) are
        # clean; the others (a slow consumer) are aborted.
        if code not in (WSCloseCode.GOING_AWAY, TOKEN_EXPIRED) and self._transport is not None:
            self._transport.abort()
        self.done.set()
        with contextlib.suppress(Exception):
            await self.response.write_eof()
