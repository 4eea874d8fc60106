"""One upstream WebSocket of one provider key, kept open while there is something to stream.

The manager says which symbols it wants (`want`); the connection makes the provider's set
equal to it: on every (re)connect it authenticates and subscribes exactly the wanted set,
and while connected it sends the difference whenever the wanted set changes.

Guarantees:
- a connection is open only while this replica holds the key's lease (lease.py); a lease
  that cannot be renewed for its TTL closes the connection;
- a dropped or failed connection is retried with jittered exponential backoff, a refused
  key much later (and all its symbols are handed back meanwhile: `room()` is 0);
- whatever a provider sends is decoded by its adapter; junk is counted and dropped, errors
  are counted, logged once each, and the symbols they concern handed back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp
import orjson
from redis.exceptions import RedisError

from tickwire.core.backoff import backoff_delay
from tickwire.ingestor.metrics import (STREAM_CONNECTED, STREAM_ERRORS, STREAM_JUNK,
                                       STREAM_RECONNECTS)
from tickwire.ingestor.streams.base import (AuthFailed, JunkFrame, Rejected, StreamAdapter,
                                            Trade)
from tickwire.ingestor.streams.lease import ConnectionLease

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
HANDSHAKE_TIMEOUT = 10.0


class StreamSink(Protocol):
    def on_trades(self, stream: str, trades: list[Trade]) -> None: ...
    def on_rejected(self, stream: str, symbols: list[str], reason: str) -> None: ...


class _Wire:
    """An aiohttp socket as JSON frames (the handshake's view)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self._ws = ws

    async def send(self, message: Any) -> None:
        await self._ws.send_str(orjson.dumps(message).decode())

    async def receive(self) -> Any:
        message = await self._ws.receive()
        if message.type is not aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"socket closed or not text ({message.type.name})")
        try:
            return orjson.loads(message.data)
        except orjson.JSONDecodeError:
            raise ConnectionError(f"not JSON: {message.data[:80]!r}") from None


class _LeaseLost(ConnectionError):
    pass


class StreamConnection:
    def __init__(self, adapter: StreamAdapter, sink: StreamSink,
                 lease: ConnectionLease | None = None, backoff_seconds: float = 0.5,
                 backoff_max_seconds: float = 30.0, auth_retry_seconds: float = 300.0,
                 clock: Callable[[], float] = time.monotonic):
        self.adapter = adapter
        self.name = adapter.name
        self.cap = adapter.cap
        self.source = f"{adapter.name}-stream"
        self.always_live = False
        self._sink = sink
        self._lease = lease
        self._backoff = (backoff_seconds, backoff_max_seconds)
        self._auth_retry = auth_retry_seconds
        self._clock = clock
        self._changed = asyncio.Event()
        self._wanted: set[str] = set()
        self._interested = False
        self.held: set[str] = set()           # subscribed on the open connection
        self._last_batch: list[str] = []
        # Refused symbols to unsubscribe anyway: an error that names none is blamed on the
        # newest batch, some of which the provider may hold; this keeps its set equal to ours.
        self._to_drop: set[str] = set()
        self._logged: set[tuple[str, str]] = set()
        self.state = "idle"
        self.reconnects = 0
        self.errors = 0
        self.junk = 0
        self.last_message_at: float | None = None
        self._next_junk_log = 0.0
        STREAM_CONNECTED.labels(self.name).set(0)
        STREAM_RECONNECTS.labels(self.name)

    # -- what the manager sees and says ------------------------------------------------

    def room(self) -> int:
        """Symbols this replica may stream here now: none without the lease or the key."""
        return self.cap if self.state in ("connecting", "connected", "backoff") else 0

    def want(self, symbols: set[str], interested: bool) -> None:
        """The symbols to stream; `interested`: hold the connection even while none is."""
        if symbols != self._wanted or interested != self._interested:
            self._wanted, self._interested = set(symbols), interested
            self._changed.set()

    def describe(self) -> dict:
        age = None if self.last_message_at is None else round(
            self._clock() - self.last_message_at, 3)
        return {"name": self.name, "state": self.state, "symbols": sorted(self.held),
                "held": len(self.held), "cap": self.cap, "reconnects": self.reconnects,
                "errors": self.errors, "junk": self.junk, "lastMessageAgeSeconds": age}

    # -- the loop -----------------------------------------------------------------------

    async def run(self) -> None:
        attempt = 0
        try:
            while True:
                if not (self._wanted or self._interested):
                    await self._go_idle()
                    await self._wait_change(None)
                    continue
                if not await self._hold_lease():
                    self._set_state("standby")
                    await self._wait_change(self._lease_period())
                    continue
                self._set_state("connecting")
                try:
                    await self._session()
                    attempt = 0
                except AuthFailed as exc:
                    await self._refused(str(exc))
                    continue
                except (ConnectionError, OSError, aiohttp.ClientError,
                        asyncio.TimeoutError) as exc:
                    if isinstance(exc, aiohttp.WSServerHandshakeError) and exc.status in (401, 403):
                        await self._refused(f"HTTP {exc.status}")
                        continue
                    attempt += 1
                    self.reconnects += 1
                    STREAM_RECONNECTS.labels(self.name).inc()
                    self._set_state("backoff")
                    wait = backoff_delay(attempt, *self._backoff, jitter="full")
                    log.warning("stream connection lost; reconnecting", extra={
                        "stream": self.name, "error": self._redact(repr(exc))[:200],
                        "retry_in_s": round(wait, 2)})
                    await asyncio.sleep(wait)
        finally:
            self.held.clear()
            STREAM_CONNECTED.labels(self.name).set(0)
            if self._lease is not None:
                with contextlib.suppress(RedisError, OSError):
                    await self._lease.release()

    async def _session(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT,
                                        sock_connect=CONNECT_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.ws_connect(self.adapter.url(), autoping=True,
                                          heartbeat=30.0, max_msg_size=8 * 2**20) as ws:
                await asyncio.wait_for(self.adapter.handshake(_Wire(ws)), HANDSHAKE_TIMEOUT)
                self._set_state("connected")
                self.held, self._to_drop = set(), set()
                self._logged.clear()
                reader = asyncio.create_task(self._read(ws), name=f"{self.name}-read")
                try:
                    await self._serve(ws, reader)
                finally:
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await reader
                    self.held = set()

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse, reader: asyncio.Task) -> None:
        beat = self.adapter.heartbeat_seconds
        next_beat = self._clock() + beat if beat else None
        next_renew = self._clock() + self._lease_period()
        renewed = self._clock()
        while True:
            if not (self._wanted or self._interested):
                return
            self._changed.clear()
            await self._sync(ws)
            now = self._clock()
            deadline = min(d for d in (next_beat, next_renew) if d is not None)
            waiter = asyncio.create_task(self._changed.wait())
            done, _ = await asyncio.wait({reader, waiter}, timeout=max(0.0, deadline - now),
                                         return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if reader in done:
                reader.result()
                raise ConnectionError(f"closed by the provider (code {ws.close_code})")
            now = self._clock()
            if next_beat is not None and now >= next_beat:
                await ws.send_str(orjson.dumps(self.adapter.heartbeat()).decode())
                next_beat = now + beat
            if now >= next_renew:
                next_renew = now + self._lease_period()
                if self._lease is not None:
                    try:
                        if not await self._lease.hold():
                            raise _LeaseLost("another replica holds the key's lease")
                        renewed = now
                    except (RedisError, OSError) as exc:
                        if now - renewed > self._lease.ttl_seconds:
                            raise _LeaseLost(f"lease not renewed for its TTL: {exc!r:.80}") from None

    async def _sync(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Make the provider's set the wanted set (in the wanted set's order of arrival)."""
        gone = sorted((self.held - self._wanted) | self._to_drop)
        self._to_drop = set()
        new = sorted(self._wanted - self.held)
        if gone:
            for frame in self.adapter.unsubscribe(gone):
                await ws.send_str(orjson.dumps(frame).decode())
            self.held.difference_update(gone)
        if new:
            for frame in self.adapter.subscribe(new):
                await ws.send_str(orjson.dumps(frame).decode())
            self.held.update(new)
            self._last_batch = new

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            self.last_message_at = self._clock()
            if message.type is not aiohttp.WSMsgType.TEXT:
                self._junk(f"{message.type.name} frame")
                continue
            try:
                events = self.adapter.decode(orjson.loads(message.data))
            except (orjson.JSONDecodeError, JunkFrame) as exc:
                self._junk(str(exc))
                continue
            self._deliver(events)

    def _deliver(self, events: list) -> None:
        """Hand a frame's events over in order: its trades of held symbols in one call
        (up to a rejection, which changes what is held)."""
        trades: list[Trade] = []
        for event in events:
            if isinstance(event, Trade):
                if event.symbol in self.held:
                    trades.append(event)
            elif isinstance(event, Rejected):
                if trades:
                    self._sink.on_trades(self.name, trades)
                    trades = []
                self._rejected(event)
        if trades:
            self._sink.on_trades(self.name, trades)

    # -- failures -----------------------------------------------------------------------

    def _rejected(self, event: Rejected) -> None:
        symbols = [s for s in (event.symbols or self._last_batch) if s in self.held]
        self._error(event.code, event.reason, symbols)
        self.held.difference_update(symbols)
        self._wanted.difference_update(symbols)
        self._to_drop.update(symbols)
        self._changed.set()
        if symbols:
            self._sink.on_rejected(self.name, symbols, f"{self.name}: {event.reason}")

    def _error(self, code: str, reason: str, symbols: list[str] = ()) -> None:
        self.errors += 1
        STREAM_ERRORS.labels(self.name, code).inc()
        if (code, reason) not in self._logged:
            self._logged.add((code, reason))
            log.warning("stream provider error", extra={
                "stream": self.name, "code": code, "error": self._redact(reason),
                "symbols": list(symbols)[:20]})

    def _junk(self, why: str) -> None:
        self.junk += 1
        STREAM_JUNK.labels(self.name).inc()
        now = self._clock()
        if now >= self._next_junk_log:
            self._next_junk_log = now + 30.0
            log.warning("junk from stream provider dropped", extra={
                "stream": self.name, "error": why[:160], "junk_total": self.junk})

    def _redact(self, text: str) -> str:
        return text.replace(self.adapter.key, "***") if self.adapter.key else text

    # -- helpers ------------------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        self.state = state
        STREAM_CONNECTED.labels(self.name).set(1 if state == "connected" else 0)

    def _lease_period(self) -> float:
        return self._lease.ttl_seconds / 3 if self._lease is not None else 3600.0

    async def _hold_lease(self) -> bool:
        if self._lease is None:
            return True
        try:
            return await self._lease.hold()
        except (RedisError, OSError) as exc:
            log.warning("stream lease unavailable", extra={"stream": self.name,
                                                           "error": repr(exc)[:160]})
            return False

    async def _go_idle(self) -> None:
        if self.state == "idle":
            return
        self._set_state("idle")
        if self._lease is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._lease.release()

    async def _refused(self, why: str) -> None:
        """The key was refused: hand every symbol back, try again much later."""
        self._error("auth", f"credentials refused: {why}")
        self._set_state("unauthorized")
        await asyncio.sleep(self._auth_retry)

    async def _wait_change(self, timeout: float | None) -> None:
        self._changed.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)
