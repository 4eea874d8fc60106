"""The edge node: its sessions, the hub, and the operations that span them — the
liveness sweep, control messages (pause / resume / drain) and draining."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import time

import orjson
from aiohttp import WSCloseCode
from prometheus_client import Counter, Gauge

from tickwire.core import names
from tickwire.core.codecs import DecodeError, decode_msgpack
from tickwire.core.models import (ErrorCode, FeedState, FeedStatus, error_message,
                                  reconnect_message)
from tickwire.core.tickbus import RedisTickBus
from tickwire.edge.admission import Admission
from tickwire.edge.announcements import Announcements
from tickwire.edge.hub import Hub, PollInterest
from tickwire.edge.observability import RecentCloses
from tickwire.edge.session import Session
from tickwire.edge.settings import EdgeSettings

log = logging.getLogger(__name__)

CONNECTIONS = Gauge("tickwire_edge_connections", "Open client connections", ["kind"])
CLOSED = Counter("tickwire_edge_connections_closed_total", "Connections closed by the edge",
                 ["reason"])

STALE_WARNINGS = Counter("tickwire_edge_data_stale_warnings_total",
                         "DATA_STALE errors sent to clients")

TRY_AGAIN_LATER = 1013


class EdgeNode:
    def __init__(self, settings: EdgeSettings, bus: RedisTickBus, announcements: Announcements):
        self.settings = settings
        self.bus = bus
        self.announcements = announcements
        self.hub = Hub(bus, announcements)
        self.admission = Admission(settings)
        self.poll_interest = PollInterest(self.hub, settings.poll_interest_seconds)
        self.sessions: set[Session] = set()
        self.stale_symbols: set[str] = set()  # the feed is down; the cache is served
        self._closing: set[asyncio.Task] = set()  # closes in flight, kept from the GC
        self.recent_closes = RecentCloses()
        self.drained = asyncio.Event()

    @property
    def edge_id(self) -> str:
        return self.settings.edge_id

    @property
    def draining(self) -> bool:
        return self.admission.draining

    # -- sessions ---------------------------------------------------------------------

    def track(self, session: Session, kind: str) -> None:
        self.sessions.add(session)
        CONNECTIONS.labels(kind).inc()

    async def untrack(self, session: Session, kind: str) -> None:
        """Release everything a finished session held, upstream interest included."""
        if session not in self.sessions:
            return
        self.sessions.discard(session)
        CONNECTIONS.labels(kind).dec()
        self.admission.release(session.address)
        await session.stop()
        await self.hub.unsubscribe(session, list(session.symbols))

    async def shed(self, session: Session, code: int, reason: str) -> None:
        CLOSED.labels(reason).inc()
        # A shed slow consumer is a performance warning; the other reasons are routine.
        log.log(logging.WARNING if code == TRY_AGAIN_LATER else logging.INFO, "closing client",
                extra={"client": session.client_id, "code": code, "reason": reason,
                       "address": session.address, "pending_updates": session.pending_updates})
        await session.stop()
        # Closing may wait on a peer that does not read: never hold up the caller
        # (the sweep) for it.
        closing = asyncio.get_running_loop().create_task(session.sink.close(code, reason))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    # -- bus messages -----------------------------------------------------------------

    def on_bus_message(self, channel: str, payload: bytes) -> None:
        if channel == names.CONTROL_CHANNEL:
            self.on_control(payload)
        elif channel == names.STATUS_CHANNEL:
            self.on_feed_status(payload)
        else:
            self.hub.dispatch_tick(channel, payload)

    def on_feed_status(self, payload: bytes) -> None:
        """The ingestor's feed changes: `stale` reaches each subscribed client once as a
        DATA_STALE error naming its symbols; `recovered` needs no message, the prices do."""
        try:
            status = FeedStatus.from_wire(decode_msgpack(payload))
        except (DecodeError, ValueError) as exc:
            log.warning("invalid feed status", extra={"error": str(exc)})
            return
        if status.state == FeedState.RECOVERED:
            self.stale_symbols.difference_update(status.symbols)
            return
        self.stale_symbols.update(status.symbols)
        self.warn_stale(self._watchers_of(status.symbols))

    async def load_stale(self) -> None:
        """At start: the symbols the ingestor flagged stale before this edge listened."""
        redis = self.bus.redis
        async for key in redis.scan_iter(match=f"{names.FEED_KEY_PREFIX}*", count=1000):
            if await redis.hget(key, "stale") == b"1":
                symbol = key.decode()[len(names.FEED_KEY_PREFIX):]
                self.stale_symbols.add(symbol)

    def _watchers_of(self, symbols) -> dict[Session, list[str]]:
        affected: dict[Session, list[str]] = {}
        for symbol in symbols:
            for session in self.hub.watchers(symbol):
                if isinstance(session, Session):
                    affected.setdefault(session, []).append(symbol)
        return affected

    def warn_stale(self, affected: dict[Session, list[str]]) -> None:
        for session, symbols in affected.items():
            STALE_WARNINGS.inc()
            session.send(error_message(ErrorCode.DATA_STALE,
                                       "providers are failing; serving cached data", symbols))

    def on_control(self, payload: bytes) -> None:
        """`{"type": "pause"|"resume"|"drain", "edge": id | "*"}`, as msgpack or JSON."""
        try:
            message = decode_msgpack(payload)
        except DecodeError:
            try:
                message = orjson.loads(payload)
            except orjson.JSONDecodeError:
                message = None
        if not isinstance(message, dict) or message.get("edge") not in ("*", self.edge_id):
            return
        kind = message.get("type")
        log.info("control message", extra={"type": kind})
        if kind == "pause":
            self.hub.pause()
        elif kind == "resume":
            self.hub.resume()
        elif kind == "drain" and not self.draining:
            asyncio.get_running_loop().create_task(self._drain_and_exit())

    # -- liveness ---------------------------------------------------------------------

    async def sweep_forever(self, every: float = 1.0) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.sweep(time.monotonic())
            except Exception:
                log.exception("liveness sweep failed; continuing")

    async def sweep(self, now: float) -> None:
        """Ping idle sockets, close the silent (two missed pings) and the hopelessly slow."""
        interval = self.settings.heartbeat_interval
        for session in list(self.sessions):
            if session.blocked_since is not None and \
                    now - session.blocked_since > self.settings.slow_client_seconds:
                await self.shed(session, TRY_AGAIN_LATER, "slow consumer")
            elif session.sink.answers_pings and now - session.last_heard > 2 * interval + 1:
                await self.shed(session, WSCloseCode.GOING_AWAY, "missed heartbeats")
            elif now - session.last_ping >= interval:
                session.queue_ping()
        self.admission.forget_idle()

    # -- draining ---------------------------------------------------------------------

    async def drain(self) -> None:
        """Stop admitting, then move every client away without a reconnect storm: each
        gets `reconnect` with a spread `retryAfterMs` and is closed with 1001, the
        closes staggered evenly over the drain window."""
        self.admission.draining = True
        sessions = list(self.sessions)
        random.shuffle(sessions)
        window = self.settings.drain_seconds
        log.info("draining", extra={"clients": len(sessions), "window_s": window})
        started = time.monotonic()
        for index, session in enumerate(sessions):
            due = started + window * index / max(1, len(sessions))
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if session not in self.sessions:
                continue
            session.send(reconnect_message(int(random.uniform(0, max(window, 1.0)) * 1000)))
            await session.flush(timeout=1.0)
            await session.stop()
            CLOSED.labels("draining").inc()
            await session.sink.close(WSCloseCode.GOING_AWAY, "edge draining")
        self.drained.set()

    async def _drain_and_exit(self) -> None:
        await self.drain()
        # The rest of the shutdown (edge_down, brokers) is aiohttp's, as on SIGTERM.
        os.kill(os.getpid(), signal.SIGTERM)
