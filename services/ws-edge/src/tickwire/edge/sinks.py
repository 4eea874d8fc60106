"""Where a session's frames go: a WebSocket, or a Server-Sent Events response."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from aiohttp import WSCloseCode, WSMsgType, web


class Sink(Protocol):
    binary: bool
    batching: bool  # several updates may share one frame (`batch_update`)
    answers_pings: bool  # silence after pings means the peer is gone

    async def write(self, frame: bytes) -> None: ...
    def lost(self) -> None:
        """A write failed: the peer is gone."""
    async def ping(self) -> None: ...
    async def close(self, code: int, reason: str) -> None: ...
    @property
    def closed(self) -> bool: ...


DIRECT_WRITE_LIMIT = 64 * 1024  # bytes a transport may hold before writes go the slow way


class WebSocketSink:
    batching = True
    answers_pings = True

    def __init__(self, ws: web.WebSocketResponse, binary: bool, transport: asyncio.BaseTransport | None):
        self.ws = ws
        self.binary = binary
        self._opcode = WSMsgType.BINARY if binary else WSMsgType.TEXT
        self._transport = transport
        # Pre-built frames may bypass aiohttp's writer only where it would not transform
        # them (no permessage-deflate on this socket).
        self.direct = transport is not None and not ws.compress

    def can_write_now(self) -> bool:
        """Whether pre-built frames can go straight to the transport without queueing
        up behind a peer that does not read."""
        transport = self._transport
        return (not transport.is_closing()
                and transport.get_write_buffer_size() < DIRECT_WRITE_LIMIT)

    def write_now(self, frames: bytes | list[bytes]) -> None:
        if type(frames) is bytes:
            self._transport.write(frames)
        else:
            self._transport.writelines(frames)

    @property
    def closed(self) -> bool:
        return self.ws.closed

    async def write(self, frame: bytes) -> None:
        """Returns once the transport has room again: the time a peer that does not
        read keeps this waiting is what the sweep measures."""
        if self.ws.closed:
            raise ConnectionResetError("socket closed")
        await self.ws.send_frame(frame, self._opcode)
        # aiohttp's own drain accounting does not see the pre-built frames written
        # around it, so wait on the transport's real backlog.
        transport = self._transport
        while transport is not None and transport.get_write_buffer_size() >= DIRECT_WRITE_LIMIT:
            if transport.is_closing():
                raise ConnectionResetError("socket closed")
            await asyncio.sleep(0.005)

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


class SseSink:
    """Server-Sent Events: one `data:` event per message, the same JSON as the socket."""

    binary = False
    batching = False
    answers_pings = False
    direct = False

    def __init__(self, response: web.StreamResponse, transport: asyncio.BaseTransport | None):
        self.response = response
        self._transport = transport
        self._closed = False
        self.done = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self._closed

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
        if code != WSCloseCode.GOING_AWAY and self._transport is not None:
            self._transport.abort()
        self.done.set()
        with contextlib.suppress(Exception):
            await self.response.write_eof()
