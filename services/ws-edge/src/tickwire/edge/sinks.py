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


class WebSocketSink:
    batching = True
    answers_pings = True

    def __init__(self, ws: web.WebSocketResponse, binary: bool, transport: asyncio.BaseTransport | None):
        self.ws = ws
        self.binary = binary
        self._opcode = WSMsgType.BINARY if binary else WSMsgType.TEXT
        self._transport = transport

    @property
    def closed(self) -> bool:
        return self.ws.closed

    async def write(self, frame: bytes) -> None:
        if self.ws.closed:
            raise ConnectionResetError("socket closed")
        await self.ws.send_frame(frame, self._opcode)

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
