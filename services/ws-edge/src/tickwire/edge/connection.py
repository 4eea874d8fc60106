"""The `/ws` endpoint: admission, upgrade, the read loop, and each client action."""

from __future__ import annotations

import logging
import socket
import time
import uuid

from aiohttp import WSCloseCode, WSMsgType, web
from prometheus_client import Counter

from tickwire.core.codecs import (JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL, DecodeError,
                                  decode_json, decode_msgpack)
from tickwire.core.models import (ErrorCode, Ping, ProtocolError, Subscribe, Unsubscribe,
                                  ack_message, connected_message, error_message,
                                  parse_client_message, pong_message)
from tickwire.edge.admission import Refused
from tickwire.edge.node import EdgeNode
from tickwire.edge.session import Session
from tickwire.edge.sinks import WebSocketSink

log = logging.getLogger(__name__)

CONNECTIONS_OPENED = Counter("tickwire_edge_connections_opened_total", "WebSockets accepted")
ERRORS = Counter("tickwire_edge_errors_total", "Error messages sent to clients", ["code"])


def send_error(session: Session, code: ErrorCode, message: str,
               symbols: list[str] | None = None) -> None:
    ERRORS.labels(str(code)).inc()
    session.send(error_message(code, message, symbols))


async def subscribe(node: EdgeNode, session: Session, action: Subscribe, ack: bool = True) -> None:
    """Subscribe what is valid and fits; one ack; snapshots right after it."""
    if action.invalid:
        send_error(session, ErrorCode.INVALID_SYMBOL,
                   f"invalid symbols: {', '.join(action.invalid[:20])}", action.invalid[:100])
    room = max(0, session.max_symbols - len(session.symbols))
    new = [s for s in action.symbols if s not in session.symbols]
    if len(new) > room:
        send_error(session, ErrorCode.SUBSCRIPTION_LIMIT_EXCEEDED,
                   f"at most {session.max_symbols} symbols per connection", new[room:][:100])
        new = new[:room]
    failed = await node.hub.subscribe(session, new) if new else []
    if failed:
        send_error(session, ErrorCode.SUBSCRIPTION_FAILED, "could not subscribe; try again", failed)
    subscribed = [s for s in action.symbols if s in session.symbols]
    if not subscribed:
        return
    session.set_max_hz(subscribed, action.max_hz)
    # No await since the hub added the session: the ack is queued before any update of
    # these symbols. Snapshots follow, deduplicated by seq against ticks meanwhile.
    if ack:
        session.send(ack_message("subscribed", subscribed))
    fresh = [s for s in new if s in session.symbols]
    for tick in await node.bus.latest(fresh):
        if tick is not None and tick.symbol in session.symbols:
            session.offer(tick, snapshot=True)
    if stale := [s for s in fresh if s in node.stale_symbols]:
        node.warn_stale({session: stale})


async def unsubscribe(node: EdgeNode, session: Session, action: Unsubscribe) -> None:
    if action.invalid:
        send_error(session, ErrorCode.INVALID_SYMBOL,
                   f"invalid symbols: {', '.join(action.invalid[:20])}", action.invalid[:100])
    await node.hub.unsubscribe(session, action.symbols)
    session.send(ack_message("unsubscribed", action.symbols))


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
    # connection, ~0.4 KiB).
    log.info("client connected", extra={"client": session.client_id, "address": session.address,
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
            ws = web.WebSocketResponse(
                protocols=(MSGPACK_SUBPROTOCOL, JSON_SUBPROTOCOL),
                autoping=False,  # pongs are ours to see: two missed pings close the socket
                max_msg_size=self.settings.max_frame_bytes,
                compress=self.settings.compression,
            )
            await ws.prepare(request)
        except BaseException:
            self.node.admission.release(address)
            raise
        _limit_send_buffer(request, self.settings.socket_send_buffer)
        binary = ws.ws_protocol == MSGPACK_SUBPROTOCOL
        session = Session(uuid.uuid4().hex, WebSocketSink(ws, binary, request.transport),
                          max_symbols=principal.max_symbols,
                          rate=self.settings.messages_per_second,
                          burst=self.settings.message_burst, address=address)
        session.send(connected_message(session.client_id, self.node.edge_id))
        self.node.track(session, "websocket")
        CONNECTIONS_OPENED.inc()
        opened = time.monotonic()
        _log_connected(session, binary, self.node.recent_closes.reconnecting(address, opened))
        try:
            await self._read_loop(ws, session)
        finally:
            symbols = len(session.symbols)
            self.node.recent_closes.closed(address)
            await self.node.untrack(session, "websocket")
            log.info("client disconnected", extra={
                "client": session.client_id, "address": address, "close_code": ws.close_code,
                "symbols": symbols, "duration_s": round(time.monotonic() - opened, 1)})
        return ws

    async def _read_loop(self, ws: web.WebSocketResponse, session: Session) -> None:
        async for message in ws:
            if session.closed:
                continue  # being shed: read nothing more from this client
            session.last_heard = time.monotonic()
            if message.type == WSMsgType.TEXT:
                await self._on_frame(ws, session, message.data, binary=False)
            elif message.type == WSMsgType.BINARY:
                await self._on_frame(ws, session, message.data, binary=True)
            elif message.type == WSMsgType.PING:
                await ws.pong(message.data)
        # A shed session's close runs in its own task; the loop ends when it lands (a
        # `break` here would let aiohttp close with 1000 first).

    async def _on_frame(self, ws: web.WebSocketResponse, session: Session, data: str | bytes,
                        binary: bool) -> None:
        if not self._within_rate(session):
            if time.monotonic() - session.rate_limited_since > self.settings.rate_limit_close_seconds:
                await self.node.shed(session, WSCloseCode.POLICY_VIOLATION, "message rate abuse")
            return
        try:
            if session.binary:
                if not binary:
                    raise DecodeError("text frame on a msgpack connection")
                decoded = decode_msgpack(data)
            else:
                if binary:
                    raise DecodeError("binary frame on a JSON connection")
                decoded = decode_json(data)
            action = parse_client_message(decoded)
        except DecodeError as exc:
            send_error(session, ErrorCode.INVALID_MESSAGE, str(exc)[:200])
            return
        except RecursionError:
            send_error(session, ErrorCode.INVALID_MESSAGE, "nested too deeply")
            return
        except ProtocolError as exc:
            send_error(session, exc.code, exc.message, exc.symbols)
            return
        if isinstance(action, Ping):
            session.send(pong_message(action.timestamp))
        elif isinstance(action, Subscribe):
            await subscribe(self.node, session, action)
        elif isinstance(action, Unsubscribe):
            await unsubscribe(self.node, session, action)

    @staticmethod
    def _within_rate(session: Session) -> bool:
        """One RATE_LIMIT_EXCEEDED per episode of excess; messages over the rate are
        dropped unanswered (answering each would amplify the abuse). An episode ends only
        when the client has calmed down enough for its bucket to refill."""
        now = time.monotonic()
        bucket = session.inbound
        if bucket.take(now):
            if session.rate_limited_since is not None and bucket.tokens >= bucket.burst - 1:
                session.rate_limited_since = None
            return True
        if session.rate_limited_since is None:
            session.rate_limited_since = now
            send_error(session, ErrorCode.RATE_LIMIT_EXCEEDED, "too many messages; slow down")
        return False
