"""What a client can ask of the edge, whatever carries the request: a WebSocket frame, an
SSE stream's `?symbols=`, or a REST read.

Guarantees:
- A malformed message gets one `error` and changes nothing; the connection lives.
- `subscribe`: the valid symbols the token allows and that fit subscribe, then one ack,
  then their snapshots (deduplicated by seq against live ticks); the invalid, the
  forbidden (FORBIDDEN: not in the token's entitlements) and the refused each get one
  error naming them.
- `refresh`: a valid token for the same subject replaces the session's (acked with
  `refreshed`); symbols it no longer allows are unsubscribed with one FORBIDDEN error
  naming them. A bad token gets UNAUTHORIZED and changes nothing.
- Limits count symbol changes, not messages: a subscribe spends one unit of the
  client's change budget per symbol it adds; over budget its new symbols are refused
  with RATE_LIMIT_EXCEEDED. Unsubscribes are always honoured.
- Messages over the client's message rate (WebSocket pings and pongs count as
  messages) are dropped with one RATE_LIMIT_EXCEEDED per episode; a client that keeps it up for `rate_limit_close_seconds` is closed (1008).
- A snapshot read that fails (Redis restarted under a pooled connection, or down) is
  tried once more, then skipped with one DATA_STALE naming the symbols: the subscription
  stands and the socket lives.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from aiohttp import WSCloseCode
from prometheus_client import Counter
from redis.exceptions import RedisError

from tickwire.core.codecs import DecodeError, decode_json, decode_msgpack
from tickwire.core.models import (ErrorCode, Ping, ProtocolError, Refresh, Subscribe, Tick,
                                  Unsubscribe, ack_message, error_message, normalise_symbol,
                                  parse_client_message, pong_message, refreshed_message)
from tickwire.edge.auth import Unauthorized
from tickwire.edge.feeds import Feeds
from tickwire.edge.frames import snapshot_frames
from tickwire.edge.hub import Hub
from tickwire.edge.session import Session
from tickwire.edge.tokens import SessionTokens

log = logging.getLogger(__name__)

ERRORS = Counter("tickwire_edge_errors_total", "Error messages sent to clients", ["code"])

Shed = Callable[[Session, int, str], Awaitable[None]]


def send_error(session: Session, code: ErrorCode, message: str,
               symbols: list[str] | None = None) -> None:
    ERRORS.labels(str(code)).inc()
    session.send(error_message(code, message, symbols))


class SymbolsQuery(NamedTuple):
    symbols: list[str]  # the valid ones, normalised, deduplicated in order
    invalid: list[str]  # as given, shortened
    given: int  # how many names the query held, duplicates included


def parse_symbols_query(value: str) -> SymbolsQuery:
    """`?symbols=A,b, C` as the SSE and REST endpoints read it."""
    raw = [s for s in value.split(",") if s.strip()]
    invalid = [s.strip()[:24] for s in raw if normalise_symbol(s) is None]
    symbols = list(dict.fromkeys(filter(None, map(normalise_symbol, raw))))
    return SymbolsQuery(symbols, invalid, len(raw))


class Commands:
    def __init__(self, hub: Hub, feeds: Feeds, shed: Shed,
                 rate_limit_close_seconds: float, tokens: SessionTokens):
        self._hub = hub
        self._tokens = tokens
        self._feeds = feeds
        self._shed = shed
        self._close_after = rate_limit_close_seconds

    async def within_rate(self, session: Session) -> bool:
        """Whether one more frame from the client (data or control: a WebSocket ping
        costs the same as a message) is within its message rate; when it is not, the
        client is told once per episode, and closed once the episode lasts too long."""
        excess = session.over_rate(time.monotonic())
        if excess is None:
            return True
        if excess == 0.0:
            send_error(session, ErrorCode.RATE_LIMIT_EXCEEDED, "too many messages; slow down")
        elif excess > self._close_after:
            await self._shed(session, WSCloseCode.POLICY_VIOLATION, "message rate abuse")
        return False

    async def on_frame(self, session: Session, data: str | bytes, binary: bool) -> None:
        """One WebSocket data frame: rate-limited, decoded, carried out."""
        if not await self.within_rate(session):
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
            await self.subscribe(session, action)
        elif isinstance(action, Unsubscribe):
            self.unsubscribe(session, action)
        elif isinstance(action, Refresh):
            self.refresh(session, action.token)

    async def subscribe(self, session: Session, action: Subscribe, ack: bool = True) -> None:
        """Subscribe what is valid and fits; one ack; snapshots right after it."""
        if action.invalid:
            send_error(session, ErrorCode.INVALID_SYMBOL,
                       f"invalid symbols: {', '.join(action.invalid[:20])}", action.invalid[:100])
        allowed, forbidden = session.principal.entitlements.split(action.symbols)
        if forbidden:
            send_error(session, ErrorCode.FORBIDDEN,
                       f"not entitled to: {', '.join(forbidden[:20])}", forbidden[:100])
        room = max(0, session.max_symbols - len(session.symbols))
        new = [s for s in allowed if s not in session.symbols]
        if len(new) > room:
            send_error(session, ErrorCode.SUBSCRIPTION_LIMIT_EXCEEDED,
                       f"at most {session.max_symbols} symbols per connection", new[room:][:100])
            new = new[:room]
        if over_edge := self._hub.beyond_cap(new):
            send_error(session, ErrorCode.SUBSCRIPTION_LIMIT_EXCEEDED,
                       f"this server holds at most {self._hub.max_symbols} distinct symbols",
                       over_edge[:100])
            refused = set(over_edge)
            new = [s for s in new if s not in refused]
        if not session.take_changes(time.monotonic(), len(new)):
            send_error(session, ErrorCode.RATE_LIMIT_EXCEEDED,
                       "too many symbol changes; slow down", new[:100])
            new = []
        failed = await self._hub.subscribe(session, new) if new else []
        if failed:
            send_error(session, ErrorCode.SUBSCRIPTION_FAILED, "could not subscribe; try again",
                       failed)
        subscribed = [s for s in allowed if s in session.symbols]
        if not subscribed:
            return
        session.set_max_hz(subscribed, action.max_hz)
        # No await since the hub added the session: the ack is queued before any update of
        # these symbols. Snapshots follow, deduplicated by seq against ticks meanwhile.
        if ack:
            session.send(ack_message("subscribed", subscribed))
        fresh = [s for s in new if s in session.symbols]
        for tick in await self._snapshots(session, fresh):
            if tick is not None:
                session.offer(tick, snapshot_frames(tick))
        if stale := self._feeds.stale_among(fresh):
            self._feeds.warn({session: stale})

    async def _snapshots(self, session: Session, symbols: list[str]) -> list[Tick | None]:
        # The first read after a Redis restart meets a pooled connection the server
        # closed; the retry gets a fresh one.
        for _ in range(2):
            try:
                return await self._hub.latest(symbols)
            except (RedisError, OSError) as exc:
                failure = exc
        log.warning("snapshot read failed: %s", failure, extra={"client": session.client_id})
        send_error(session, ErrorCode.DATA_STALE, "snapshot unavailable; live updates follow",
                   symbols[:100])
        return []

    def unsubscribe(self, session: Session, action: Unsubscribe) -> None:
        if action.invalid:
            send_error(session, ErrorCode.INVALID_SYMBOL,
                       f"invalid symbols: {', '.join(action.invalid[:20])}", action.invalid[:100])
        self._hub.unsubscribe(session, action.symbols)
        session.send(ack_message("unsubscribed", action.symbols))

    def refresh(self, session: Session, token: str) -> None:
        try:
            narrowed = self._tokens.refresh(session, token)
        except Unauthorized as exc:
            send_error(session, ErrorCode.UNAUTHORIZED, str(exc))
            return
        if narrowed:
            self._hub.unsubscribe(session, narrowed)
            send_error(session, ErrorCode.FORBIDDEN,
                       f"no longer entitled to: {', '.join(narrowed[:20])}", narrowed[:100])
        expires_in = session.principal.expires_in()
        session.send(refreshed_message(None if expires_in is None
                                       else max(0, int(expires_in * 1000))))
