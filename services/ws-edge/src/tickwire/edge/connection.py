"""The `/ws` endpoint: upgrade, read loop, and the handling of each client action."""

from __future__ import annotations

import logging
import uuid

from aiohttp import WSMsgType, web
from prometheus_client import Counter, Gauge

from tickwire.core.codecs import (MSGPACK_SUBPROTOCOL, JSON_SUBPROTOCOL, DecodeError,
                                  decode_json, decode_msgpack)
from tickwire.core.models import (ErrorCode, Ping, ProtocolError, Subscribe, Unsubscribe,
                                  ack_message, connected_message, error_message,
                                  parse_client_message, pong_message)
from tickwire.core.tickbus import RedisTickBus
from tickwire.edge.hub import Hub
from tickwire.edge.session import Session
from tickwire.edge.settings import EdgeSettings

log = logging.getLogger(__name__)

CONNECTIONS = Gauge("tickwire_edge_connections", "Open client WebSockets")
CONNECTIONS_OPENED = Counter("tickwire_edge_connections_opened_total", "WebSockets accepted")
ERRORS = Counter("tickwire_edge_errors_total", "Error messages sent to clients", ["code"])


class ConnectionHandler:
    def __init__(self, settings: EdgeSettings, hub: Hub, bus: RedisTickBus):
        self._settings = settings
        self._hub = hub
        self._bus = bus
        self.sessions: set[Session] = set()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(
            protocols=(MSGPACK_SUBPROTOCOL, JSON_SUBPROTOCOL),
            heartbeat=self._settings.heartbeat_interval,
            max_msg_size=self._settings.max_frame_bytes,
            compress=self._settings.compression,
        )
        await ws.prepare(request)
        session = Session(uuid.uuid4().hex, ws, binary=ws.ws_protocol == MSGPACK_SUBPROTOCOL)
        self.sessions.add(session)
        CONNECTIONS.inc()
        CONNECTIONS_OPENED.inc()
        session.send(connected_message(session.client_id, self._settings.edge_id))
        session.start()
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self._on_frame(session, message.data, binary=False)
                elif message.type == WSMsgType.BINARY:
                    await self._on_frame(session, message.data, binary=True)
        finally:
            # Cleanup: release this client's symbols (and upstream interest if it was the
            # last local watcher), stop its writer.
            self.sessions.discard(session)
            CONNECTIONS.dec()
            await session.stop()
            await self._hub.unsubscribe(session, list(session.symbols))
        return ws

    async def _on_frame(self, session: Session, data: str | bytes, binary: bool) -> None:
        try:
            if session.binary:
                if not binary:
                    raise DecodeError("text frame on a msgpack connection")
                decoded = decode_msgpack(data)
            else:
                decoded = decode_json(data)
            action = parse_client_message(decoded)
        except DecodeError as exc:
            self._error(session, ErrorCode.INVALID_MESSAGE, str(exc))
            return
        except ProtocolError as exc:
            self._error(session, exc.code, exc.message, exc.symbols)
            return
        if isinstance(action, Ping):
            session.send(pong_message(action.timestamp))
        elif isinstance(action, Subscribe):
            await self._subscribe(session, action)
        elif isinstance(action, Unsubscribe):
            await self._unsubscribe(session, action)

    async def _subscribe(self, session: Session, action: Subscribe) -> None:
        if action.invalid:
            self._error(session, ErrorCode.INVALID_SYMBOL,
                        f"invalid symbols: {', '.join(action.invalid[:20])}", action.invalid[:100])
        room = self._settings.max_symbols - len(session.symbols)
        new = [s for s in action.symbols if s not in session.symbols]
        if len(new) > room:
            refused = new[max(room, 0):]
            new = new[:max(room, 0)]
            self._error(session, ErrorCode.SUBSCRIPTION_LIMIT_EXCEEDED,
                        f"at most {self._settings.max_symbols} symbols per connection",
                        refused[:100])
        failed = await self._hub.subscribe(session, new) if new else []
        if failed:
            self._error(session, ErrorCode.SUBSCRIPTION_FAILED,
                        "could not subscribe; try again", failed)
        subscribed = [s for s in action.symbols if s in session.symbols]
        if not subscribed:
            return
        # The ack is queued before any update of these symbols can be offered (no await
        # since the hub added the session); snapshots follow, deduplicated by seq against
        # ticks that arrive meanwhile.
        session.send(ack_message("subscribed", subscribed))
        fresh = [s for s in new if s in session.symbols]
        for tick in await self._bus.latest(fresh):
            if tick is not None and tick.symbol in session.symbols:
                session.offer(tick, snapshot=True)

    async def _unsubscribe(self, session: Session, action: Unsubscribe) -> None:
        if action.invalid:
            self._error(session, ErrorCode.INVALID_SYMBOL,
                        f"invalid symbols: {', '.join(action.invalid[:20])}", action.invalid[:100])
        await self._hub.unsubscribe(session, action.symbols)
        session.send(ack_message("unsubscribed", action.symbols))

    def _error(self, session: Session, code: ErrorCode, message: str,
               symbols: list[str] | None = None) -> None:
        ERRORS.labels(str(code)).inc()
        session.send(error_message(code, message, symbols))
