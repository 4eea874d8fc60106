"""A TCP proxy in front of HAProxy that can cut WebSockets the way a hostile network does.

`block()` cuts the WebSockets in flight and answers every new upgrade 503;
`block(hang=True)` cuts them too but leaves new upgrades unanswered (a black hole: the
client stays "reconnecting" for as long as the test needs), until `block()` or `unblock()`
ends the wait. Plain HTTP (the page, the REST fallback) keeps flowing throughout. Runs in
the test's event loop; `stop()` closes the listener and every connection it holds.
"""

from __future__ import annotations

import asyncio
import contextlib

HEADER_LIMIT = 64 * 1024


class WsBlocker:
    def __init__(self, upstream_port: int):
        self._upstream_port = upstream_port
        self._server: asyncio.Server | None = None
        self._sockets: set[asyncio.StreamWriter] = set()  # both ends of piped WebSockets
        self._tasks: set[asyncio.Task] = set()
        self.blocked = False
        self.hanging = False
        self._released = asyncio.Event()  # ends the wait of held upgrades
        self.refused = 0
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self) -> WsBlocker:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def block(self, hang: bool = False) -> None:
        """Cut the WebSockets in flight; refuse new upgrades (or hold them, unanswered)."""
        self.blocked, self.hanging = True, hang
        if not hang:
            self._release_held()
        for writer in list(self._sockets):
            writer.transport.abort()
        self._sockets.clear()

    def unblock(self) -> None:
        self.blocked = self.hanging = False
        self._release_held()

    def _release_held(self) -> None:
        self._released.set()
        self._released = asyncio.Event()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.block()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        is_websocket = b"upgrade: websocket" in head.lower()
        if is_websocket and self.blocked and self.hanging:
            await self._released.wait()
        if is_websocket and self.blocked:
            self.refused += 1
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")
            await writer.drain()
            return
        if not is_websocket:
            # Only a connection's first request is inspected: one HTTP request per
            # connection, so a client cannot reuse a REST keep-alive connection for an
            # upgrade that would slip past the block.
            head = head[:-2] + b"Connection: close\r\n\r\n"
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        if is_websocket:
            self._sockets |= {writer, up_writer}
        try:
            up_writer.write(head)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._sockets.discard(writer)
            self._sockets.discard(up_writer)
            up_writer.close()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while chunk := await source.read(65536):
                sink.write(chunk)
                await sink.drain()
        except ConnectionError:
            pass
        finally:
            if not sink.is_closing():
                with contextlib.suppress(OSError, RuntimeError):
                    sink.write_eof()
