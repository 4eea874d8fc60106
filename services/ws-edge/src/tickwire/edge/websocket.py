"""The `/ws` transport: admission, upgrade, and the read loop.

Guarantees: a refused client costs nothing past the HTTP answer; every admitted socket
is tracked by the node until its read loop ends, then released once; each data frame
goes to the shared commands in the order it arrived; WebSocket pings within the
client's message rate are answered (pings and pongs count against it); a frame that
breaks RFC 6455 (unmasked, a close code not for the wire, an undecodable compressed
payload) fails the connection with 1002 or 1007 (`rfc6455`); a client being shed is
read no further.
"""

from __future__ import annotations

import logging
import socket
import time

from aiohttp import WSMsgType, web
from prometheus_client import Counter

from tickwire.core.codecs import JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL
from tickwire.core.models import connected_message
from tickwire.edge.admission import Refused
from tickwire.edge.deflate import SharedDeflateResponse
from tickwire.edge.node import EdgeNode
from tickwire.edge.rfc6455 import StrictWebSocketResponse
from tickwire.edge.session import Session
from tickwire.edge.transport import WebSocketSink

log = logging.getLogger(__name__)


class EdgeWebSocketResponse(StrictWebSocketResponse, SharedDeflateResponse):
    """RFC 6455's checks on what a client sends (rfc6455), and permessage-deflate answered
    so that one compressed frame per tick serves every compressed socket (deflate)."""

CONNECTIONS_OPENED = Counter("tickwire_edge_connections_opened_total", "WebSockets accepted")


def _limit_send_buffer(request: web.Request, size: int) -> None:
    """Bytes a stalled peer can hold back in the kernel; beyond them the writer waits,
    the session conflates, and the sweep sees how long it has been waiting."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if size and sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


def _log_connected(session: Session, binary: bool, reconnection: bool) -> None:
    # Not logged from the handler itself: logging looks at its caller's frame, and a
    # coroutine's frame object, once made, lives as long as the coroutine (here the whole
    # connection, ~0.4 KiB). DEBUG, like the disconnect: at INFO the two lines were 7 %
    # of the edge's CPU in a reconnect storm; the connection metrics count the same.
    log.debug("client connected", extra={"client": session.client_id, "address": session.address,
                                        "binary": binary, "reconnection": reconnection})


class WebSocketEndpoint:
    def __init__(self, node: EdgeNode):
        self.node = node
        self.settings = node.settings

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            address, principal = self.node.admission.admit(request)
        except Refused as refused:
            return refused.response
        try:
            ws = EdgeWebSocketResponse(
                protocols=(MSGPACK_SUBPROTOCOL, JSON_SUBPROTOCOL),
                autoping=False,  # pongs are ours to see: two missed pings close the socket
                max_msg_size=self.settings.max_frame_bytes,
                compress=self.settings.compression,
            )
            await ws.prepare(request)
        except BaseException:
            self.node.admission.release(address, principal.subject)
            raise
        _limit_send_buffer(request, self.settings.socket_send_buffer)
        binary = ws.ws_protocol == MSGPACK_SUBPROTOCOL
        session = self.node.open_session(WebSocketSink(ws, binary, request),
                                         "websocket", address, principal)
        session.send(connected_message(session.client_id, self.node.edge_id))
        CONNECTIONS_OPENED.inc()
        opened = time.monotonic()
        _log_connected(session, binary, self.node.recent_closes.reconnecting(address, opened))
        try:
            await self._read_loop(ws, session)
        finally:
            symbols = len(session.symbols)
            self.node.recent_closes.closed(address)
            await self.node.untrack(session, "websocket")
            log.debug("client disconnected", extra={
                "client": session.client_id, "address": address, "close_code": ws.close_code,
                "symbols": symbols, "duration_s": round(time.monotonic() - opened, 1)})
        return ws

    async def _read_loop(self, ws: web.WebSocketResponse, session: Session) -> None:
        commands = self.node.commands
        async for message in ws:
            if session.closed:
                continue  # being shed: read nothing more from this client
            session.heard(time.monotonic())
            if message.type == WSMsgType.TEXT:
                await commands.on_frame(session, message.data, binary=False)
            elif message.type == WSMsgType.BINARY:
                await commands.on_frame(session, message.data, binary=True)
            elif message.type == WSMsgType.PING:
                if await commands.within_rate(session):
                    await ws.pong(message.data)
            elif message.type == WSMsgType.PONG:
                await commands.within_rate(session)
        # A shed session's close runs in its own task; the loop ends when it lands (a
        # `break` here would let aiohttp close with 1000 first).
