"""The edge node: wires the bus, the hub, the commands and the sessions together.

Guarantees: every session the node tracks is released exactly once (its admission
slot, its subscriptions, its writer); a shed client is closed in its own task, so the
caller never waits on a peer that does not read; liveness is judged by `liveness` on
one sweep, which looks only at the sessions due a look. The node holds no logic of its
own beyond that wiring: control parsing, feed status and draining live in their own
modules.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable, Coroutine

from prometheus_client import Counter, Gauge

from tickwire.core import names
from tickwire.core.models import ErrorCode, token_expiring_message
from tickwire.core.tickbus import TickBus
from tickwire.edge import expiry, liveness
from tickwire.edge.admission import Admission
from tickwire.edge.announcements import Announcements
from tickwire.edge.auth import Principal
from tickwire.edge.coldread import ColdReads
from tickwire.edge.commands import Commands, send_error
from tickwire.edge.control import parse_control
from tickwire.edge.drain import drain_sessions
from tickwire.edge.feeds import Feeds
from tickwire.edge.hub import Hub
from tickwire.edge.observability import RecentCloses
from tickwire.edge.rest import PollInterest
from tickwire.edge.session import Session
from tickwire.edge.settings import EdgeSettings
from tickwire.edge.tokens import SessionTokens
from tickwire.edge.transport import TOKEN_EXPIRED, Sink
from tickwire.edge.workers import pod_id

log = logging.getLogger(__name__)

CONNECTIONS = Gauge("tickwire_edge_connections", "Open client connections", ["kind"])
SWEEP_SLICE = 250  # sessions looked at in one event-loop pass of the sweep
_connections = functools.cache(CONNECTIONS.labels)  # kind → its child: labels() is not cheap
CLOSED = Counter("tickwire_edge_connections_closed_total", "Connections closed by the edge",
                 ["reason"])

CONTROL_QUEUE_FULL = "control queue full"


class EdgeNode:
    def __init__(self, settings: EdgeSettings, bus: TickBus, announcements: Announcements,
                 exit_process: Callable[[], None] = lambda: None):
        self.settings = settings
        self.bus = bus
        self.announcements = announcements
        self.cold_reads = ColdReads(settings.cold_read_wait_ms / 1000,
                                    settings.cold_read_max_waiting)
        self.hub = Hub(bus, announcements, settings.unsubscribe_delay_seconds, self.cold_reads)
        self.feeds = Feeds(self.hub)
        self.admission = Admission(settings)
        self.tokens = SessionTokens(self.admission.auth, self.admission.subjects,
                                    settings.token_expiry_warning_seconds)
        self.commands = Commands(self.hub, self.feeds, self.shed,
                                 settings.rate_limit_close_seconds, self.tokens)
        self.poll_interest = PollInterest(self.hub, settings.poll_interest_seconds)
        self.sessions: set[Session] = set()
        self.waiting_on_peer: set[Session] = set()  # whose write waits on a peer that is slow
        self.liveness_schedule = liveness.Schedule(settings.heartbeat_interval)
        self._closing: set[asyncio.Task] = set()  # closes in flight, kept from the GC
        self.recent_closes = RecentCloses()
        self.drained = asyncio.Event()
        self._exit_process = exit_process
        bus.on(names.CONTROL_CHANNEL, self.on_control)
        bus.on(names.STATUS_CHANNEL, self.feeds.on_message)
        bus.on_ticks(self.hub.dispatch_tick)

    @property
    def edge_id(self) -> str:
        return self.settings.edge_id

    @property
    def draining(self) -> bool:
        return self.admission.draining

    # -- sessions ---------------------------------------------------------------------

    def open_session(self, sink: Sink, kind: str, address: str,
                     principal: Principal) -> Session:
        """A tracked session under a fresh client id (128 random bits, as hex)."""
        settings = self.settings
        session = Session(os.urandom(16).hex(), sink, max_symbols=principal.max_symbols,
                          rate=settings.messages_per_second, burst=settings.message_burst,
                          change_rate=settings.symbol_changes_per_second,
                          change_burst=settings.symbol_change_burst, address=address,
                          on_overflow=self._overflowed, waiting=self.waiting_on_peer)
        self.tokens.attach(session, principal, refreshable=kind == "websocket")
        self.sessions.add(session)
        self.liveness_schedule.track(session)
        _connections(kind).inc()
        return session

    async def untrack(self, session: Session, kind: str) -> None:
        """Release everything a finished session held, upstream interest included."""
        if session not in self.sessions:
            return
        self.sessions.discard(session)
        self.liveness_schedule.forget(session)
        _connections(kind).dec()
        self.admission.release(session.address, session.principal.subject)
        self.tokens.forget(session)
        await session.stop()
        self.hub.leave(session)

    async def shed(self, session: Session, code: int, reason: str) -> None:
        if session.closed:
            return
        await session.stop()
        self._log_close(session, code, reason)
        # Closing may wait on a peer that does not read: never hold up the caller
        # (the sweep, the read loop) for it.
        self._in_background(session.sink.close(code, reason))

    def _overflowed(self, session: Session) -> None:
        """A client whose control queue is full: an ack or error would be lost, so it
        goes, told to come back later."""
        self._in_background(self.shed_now(session, liveness.TRY_AGAIN_LATER, CONTROL_QUEUE_FULL))

    async def shed_now(self, session: Session, code: int, reason: str) -> None:
        """Close `session` and wait for it (bounded by the sink's close)."""
        await session.stop()
        self._log_close(session, code, reason)
        await session.sink.close(code, reason)

    @staticmethod
    def _log_close(session: Session, code: int, reason: str) -> None:
        CLOSED.labels(reason).inc()
        # A shed slow consumer is a performance warning; the other reasons are routine.
        log.log(logging.WARNING if code == liveness.TRY_AGAIN_LATER else logging.INFO,
                "closing client", extra={"client": session.client_id, "code": code,
                                         "reason": reason, "address": session.address,
                                         "pending_updates": session.pending_updates})

    # -- control ----------------------------------------------------------------------

    def on_control(self, _channel: str, payload: bytes) -> None:
        kind = parse_control(payload, self.edge_id, pod_id(self.edge_id))
        if kind is None:
            return
        log.info("control message", extra={"type": kind})
        if kind == "pause":
            self.hub.pause()
        elif kind == "resume":
            self.hub.resume()
        elif not self.draining:
            task = asyncio.get_running_loop().create_task(self._drain_and_exit())
            self._closing.add(task)

    # -- liveness ---------------------------------------------------------------------

    async def sweep_forever(self, every: float = 1.0) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.sweep(time.monotonic())
            except Exception:
                log.exception("liveness sweep failed; continuing")

    async def sweep(self, now: float) -> None:
        """Ping the sessions due a ping, close the silent (two missed pings) and the
        hopelessly slow: what `liveness.Schedule` says is due and the sessions whose
        write waits on the peer, not every session. In slices of SWEEP_SLICE sessions,
        one event-loop pass each: sockets opened together (a reconnect storm) come due
        together, and one pass for all of them would hold up every tick in flight."""
        interval, slow = self.settings.heartbeat_interval, self.settings.slow_client_seconds
        due = self.liveness_schedule.due(now)
        try:
            for index, session in enumerate([*self.waiting_on_peer, *due]):
                if index and index % SWEEP_SLICE == 0:
                    await asyncio.sleep(0)
                if session.closed:
                    continue
                verdict = liveness.verdict(session, now, interval, slow)
                if verdict == liveness.PING:
                    session.queue_ping(now)
                elif verdict is not None:
                    await self.shed(session, *verdict)
        finally:  # whatever happened, every session still open stays on the schedule
            for session in due:
                if session in self.sessions and not session.closed:
                    self.liveness_schedule.track(session)
        self.admission.forget_idle()
        self.expire_tokens(time.time())

    def expire_tokens(self, now: float) -> None:
        """Warn the sockets whose token lapses soon; end those whose token has lapsed:
        an UNAUTHORIZED error, then (a WebSocket) close 4001."""
        for session, event, expires_at in self.tokens.due(now):
            if session.closed:
                continue
            if event == expiry.WARN:
                session.send(token_expiring_message(max(0, int((expires_at - now) * 1000))))
            else:
                send_error(session, ErrorCode.UNAUTHORIZED, "token expired")
                self._in_background(self._close_after_flush(session, TOKEN_EXPIRED,
                                                            "token expired"))

    async def _close_after_flush(self, session: Session, code: int, reason: str) -> None:
        await session.flush(1.0)  # the error first: shedding drops what is still queued
        await self.shed(session, code, reason)

    def _in_background(self, coroutine: Coroutine) -> None:
        """Run `coroutine` in a task kept from the garbage collector until it ends."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # -- draining ---------------------------------------------------------------------

    async def drain(self) -> None:
        """Stop admitting, then move every client away (see `drain`)."""
        self.admission.draining = True
        window = self.settings.drain_seconds
        log.info("draining", extra={"clients": len(self.sessions), "window_s": window})
        await drain_sessions(list(self.sessions), window, self.shed_now)
        self.drained.set()

    async def _drain_and_exit(self) -> None:
        await self.drain()
        # The rest of the shutdown (edge_down, brokers) is the process's, as on SIGTERM.
        self._exit_process()
