"""The edge node: wires the bus, the hub, the commands and the sessions together.

Guarantees: every session the node tracks is released exactly once (its admission
slot, its subscriptions, its writer); a shed client is closed in its own task, so the
caller never waits on a peer that does not read; liveness is judged by `liveness` on
one sweep. The node holds no logic of its own beyond that wiring: control parsing,
feed status and draining live in their own modules.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge

from tickwire.core import names
from tickwire.core.tickbus import TickBus
from tickwire.edge import liveness
from tickwire.edge.admission import Admission
from tickwire.edge.announcements import Announcements
from tickwire.edge.commands import Commands
from tickwire.edge.control import parse_control
from tickwire.edge.drain import drain_sessions
from tickwire.edge.feeds import Feeds
from tickwire.edge.hub import Hub
from tickwire.edge.observability import RecentCloses
from tickwire.edge.rest import PollInterest
from tickwire.edge.session import Session
from tickwire.edge.settings import EdgeSettings
from tickwire.edge.transport import Sink
from tickwire.edge.workers import pod_id

log = logging.getLogger(__name__)

CONNECTIONS = Gauge("tickwire_edge_connections", "Open client connections", ["kind"])
CLOSED = Counter("tickwire_edge_connections_closed_total", "Connections closed by the edge",
                 ["reason"])

CONTROL_QUEUE_FULL = "control queue full"


class EdgeNode:
    def __init__(self, settings: EdgeSettings, bus: TickBus, announcements: Announcements,
                 exit_process: Callable[[], None] = lambda: None):
        self.settings = settings
        self.bus = bus
        self.announcements = announcements
        self.hub = Hub(bus, announcements, settings.unsubscribe_delay_seconds)
        self.feeds = Feeds(self.hub)
        self.commands = Commands(self.hub, bus, self.feeds, self.shed,
                                 settings.rate_limit_close_seconds)
        self.admission = Admission(settings)
        self.poll_interest = PollInterest(self.hub, settings.poll_interest_seconds)
        self.sessions: set[Session] = set()
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

    def open_session(self, client_id: str, sink: Sink, kind: str, address: str,
                     max_symbols: int) -> Session:
        settings = self.settings
        session = Session(client_id, sink, max_symbols=max_symbols,
                          rate=settings.messages_per_second, burst=settings.message_burst,
                          change_rate=settings.symbol_changes_per_second,
                          change_burst=settings.symbol_change_burst, address=address,
                          on_overflow=self._overflowed)
        self.sessions.add(session)
        CONNECTIONS.labels(kind).inc()
        return session

    async def untrack(self, session: Session, kind: str) -> None:
        """Release everything a finished session held, upstream interest included."""
        if session not in self.sessions:
            return
        self.sessions.discard(session)
        CONNECTIONS.labels(kind).dec()
        self.admission.release(session.address)
        await session.stop()
        self.hub.leave(session)

    async def shed(self, session: Session, code: int, reason: str) -> None:
        if session.closed:
            return
        await session.stop()
        self._log_close(session, code, reason)
        # Closing may wait on a peer that does not read: never hold up the caller
        # (the sweep, the read loop) for it.
        closing = asyncio.get_running_loop().create_task(session.sink.close(code, reason))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    def _overflowed(self, session: Session) -> None:
        """A client whose control queue is full: an ack or error would be lost, so it
        goes, told to come back later."""
        task = asyncio.get_running_loop().create_task(
            self.shed_now(session, liveness.TRY_AGAIN_LATER, CONTROL_QUEUE_FULL))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

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
        """Ping idle sockets, close the silent (two missed pings) and the hopelessly slow."""
        interval, slow = self.settings.heartbeat_interval, self.settings.slow_client_seconds
        for session in list(self.sessions):
            verdict = liveness.verdict(session, now, interval, slow)
            if verdict == liveness.PING:
                session.queue_ping(now)
            elif verdict is not None:
                await self.shed(session, *verdict)
        self.admission.forget_idle()

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
