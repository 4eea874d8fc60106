"""TickwireClient: the seed's WebSocketService in asyncio.

Guarantees:
- Per symbol and epoch, `updates()` yields strictly increasing `seq`s: duplicates and
  older updates (a snapshot racing a tick, a poll returning what a tick already gave) are
  dropped. A new epoch is always taken.
- After every reconnect the client resubscribes everything it held, then replays the
  actions made while the socket was down, in order; so the edge ends up with exactly
  `active_subscriptions`. Each resubscription brings a fresh snapshot per symbol.
- While the socket is down for `max_reconnect_attempts` consecutive attempts, the client
  polls the REST fallback at `polling_interval` and keeps retrying the socket in the
  background (at most every 30 × `reconnect_interval`); when the socket is back, polling
  stops.
- With `follow_rollout` (the default), `connect()` first asks the edge's `/api/config`;
  a client outside the WebSocket rollout (rollout.py) never opens a socket and polls the
  REST fallback at `polling_interval` until `disconnect()`; `transport` says which and why.
- Nothing grows without bound: offline actions are capped at `message_queue_size`
  (`QueueFull` beyond), each `updates()` iterator keeps at most `update_buffer_size`
  updates (the oldest go first).
- With a `token_provider`, every (re)connect carries a token fetched just before it; a
  `token_expiring` from the edge is answered with a `refresh` carrying a fresh one; a
  socket closed 4001 (token expired) reconnects at once, with a fresh token. REST reads
  carry the latest token.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import re
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

import aiohttp
import msgpack
import orjson

from tickwire.client.backoff import backoff_delay
from tickwire.client.config import ClientConfig
from tickwire.client.fallback import QuoteFetcher, split_quote
from tickwire.client.models import (ConnectionFailed, ConnectionMetrics, ConnectionState,
                                    FallbackError, QueueFull, ServerError, TickwireError,
                                    Update)
from tickwire.client.rollout import TransportChoice, choose_transport, fetch_client_settings
from tickwire.client.sequence import SequenceTracker, Verdict

log = logging.getLogger(__name__)

MSGPACK_SUBPROTOCOL = "tickwire.v1.msgpack"
JSON_SUBPROTOCOL = "tickwire.v1.json"
SYMBOL_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9.\-:_]{0,19}$")
TOKEN_EXPIRED = 4001  # the edge's close code for a socket whose token lapsed
GAP_REFETCH_SECONDS = 5.0  # conflation skips seqs by design: refetch a symbol at most this often
LATENCY_SAMPLES = 20

MessageHandler = Callable[[dict[str, Any]], Any]
ErrorHandler = Callable[[TickwireError], Any]
ConnectionHandler = Callable[[ConnectionState], Any]
Remover = Callable[[], None]


class ConnectionStatus(StrEnum):
    """What a status indicator shows: the seed's Live / Delayed / Reconnecting / Offline."""

    LIVE = "live"
    DELAYED = "delayed"
    RECONNECTING = "reconnecting"
    OFFLINE = "offline"


def normalise_symbols(symbols: Iterable[str]) -> list[str]:
    """Upper-cased, deduplicated, in order; ValueError naming any invalid symbol."""
    if isinstance(symbols, str):
        symbols = [symbols]
    result = list(dict.fromkeys(s.strip().upper() for s in symbols))
    invalid = [s for s in result if not SYMBOL_PATTERN.match(s)]
    if invalid:
        raise ValueError(f"invalid symbols: {', '.join(invalid[:20])}")
    return result


def _now() -> datetime:
    return datetime.now(timezone.utc)


class _UpdateStream:
    """One `updates()` iterator: a bounded buffer that drops its oldest when full."""

    def __init__(self, size: int, on_drop: Callable[[], None]):
        self._buffer: deque[Update] = deque()
        self._size = size
        self._on_drop = on_drop
        self._ready = asyncio.Event()
        self._ended = False

    def push(self, update: Update) -> None:
        if len(self._buffer) >= self._size:
            self._buffer.popleft()
            self._on_drop()
        self._buffer.append(update)
        self._ready.set()

    def end(self) -> None:
        self._ended = True
        self._ready.set()

    def __aiter__(self) -> _UpdateStream:
        return self

    async def __anext__(self) -> Update:
        while not self._buffer:
            if self._ended:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._buffer.popleft()


class TickwireClient:
    def __init__(self, config: ClientConfig, *,
                 uniform: Callable[[float, float], float] = random.uniform):
        self.config = config
        self._uniform = uniform
        self._state = ConnectionState.CLOSED
        self._session: aiohttp.ClientSession | None = None
        self._fetcher: QuoteFetcher | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._supervisor: asyncio.Task | None = None
        self._poller: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False
        self._ever_open = False
        self._wake = asyncio.Event()
        self._retry_after: float | None = None
        self._token: str | None = config.token

        self._desired: dict[str, None] = {}   # ordered set: what the user subscribed
        self._max_hz: dict[str, float] = {}
        self._held: list[str] = []            # what the edge had when the socket was lost
        self._outbox: deque[dict[str, Any]] = deque()
        self._sequences = SequenceTracker()
        self._last_refetch: dict[str, float] = {}

        self._polling = False
        self._poll_ok = False
        self._poll_now = asyncio.Event()
        self._polling_only = False
        self.transport: TransportChoice | None = None
        """The transport `connect()` chose (None before it, or without `follow_rollout`)."""

        self._message_handlers: list[MessageHandler] = []
        self._error_handlers: list[ErrorHandler] = []
        self._connection_handlers: list[ConnectionHandler] = []
        self._streams: weakref.WeakSet[_UpdateStream] = weakref.WeakSet()

        self.client_id: str | None = None
        self.edge_id: str | None = None
        self._connected_at: datetime | None = None
        self._last_message_at: datetime | None = None
        self._message_count = 0
        self._error_count = 0
        self._reconnect_attempts = 0  # retries since the last open: the backoff step
        self._failures = 0  # consecutive failed attempts: the trigger for polling
        self._gaps = 0
        self._dropped = 0
        self._latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._pings: dict[str, float] = {}

    # -- state ------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def is_connected(self) -> bool:
        return self._state is ConnectionState.OPEN

    @property
    def is_real_time(self) -> bool:
        """True while updates arrive over the socket; False while polling or offline."""
        return self._state is ConnectionState.OPEN

    @property
    def is_polling(self) -> bool:
        """True while the REST fallback is in use and its last poll succeeded."""
        return self._polling and self._poll_ok

    @property
    def status(self) -> ConnectionStatus:
        if self._state is ConnectionState.OPEN:
            return ConnectionStatus.LIVE
        if self.is_polling:
            return ConnectionStatus.DELAYED
        if self._state in (ConnectionState.CONNECTING, ConnectionState.RECONNECTING) \
                and not self._polling:
            return ConnectionStatus.RECONNECTING
        return ConnectionStatus.OFFLINE

    @property
    def latency(self) -> float:
        """The last ping → pong round trip, in milliseconds (0 before the first)."""
        return self._latencies[-1] if self._latencies else 0.0

    @property
    def last_message_time(self) -> datetime | None:
        return self._last_message_at

    def active_subscriptions(self) -> set[str]:
        return set(self._desired)

    def metrics(self) -> ConnectionMetrics:
        return ConnectionMetrics(
            connection_state=self._state,
            connected_at=self._connected_at,
            last_message_at=self._last_message_at,
            message_count=self._message_count,
            error_count=self._error_count,
            reconnect_attempts=self._reconnect_attempts,
            average_latency=(sum(self._latencies) / len(self._latencies)
                             if self._latencies else 0.0),
            active_subscriptions=len(self._desired),
            is_real_time=self.is_real_time,
            is_polling=self.is_polling,
            gaps_detected=self._gaps,
            dropped_updates=self._dropped,
        )

    # -- handlers ---------------------------------------------------------------------

    def on_message(self, handler: MessageHandler) -> Remover:
        """Every decoded server message, as a dict, in arrival order."""
        return self._add(self._message_handlers, handler)

    def on_error(self, handler: ErrorHandler) -> Remover:
        return self._add(self._error_handlers, handler)

    def on_connection_change(self, handler: ConnectionHandler) -> Remover:
        """Called on every state change, and when polling starts, stops, fails or recovers
        (the state may then be unchanged: read `status` / `is_real_time`)."""
        return self._add(self._connection_handlers, handler)

    @staticmethod
    def _add(handlers: list, handler: Callable) -> Remover:
        handlers.append(handler)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                handlers.remove(handler)
        return remove

    def updates(self) -> AsyncIterator[Update]:
        """An iterator of the updates that arrive from now on; it ends at `disconnect()`."""
        stream = _UpdateStream(self.config.update_buffer_size, self._count_drop)
        self._streams.add(stream)
        return stream

    # -- lifecycle --------------------------------------------------------------------

    async def connect(self) -> None:
        """Returns once the socket is open or the first attempt has failed (retries then
        go on in the background). Raises ConnectionFailed if that attempt fails and
        auto-reconnect is off. Outside the WebSocket rollout it returns at once, polling."""
        if self._polling_only or (self._supervisor is not None and not self._supervisor.done()):
            return
        self._stopping = False
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.config.tls))
            self._fetcher = QuoteFetcher(self._session, self.config.rest_base, self._auth,
                                         timeout=max(self.config.connect_timeout, 1.0))
        if self.config.follow_rollout:
            settings = await fetch_client_settings(self._session, self.config.rest_base,
                                                   self._auth(), self.config.connect_timeout)
            self.transport = choose_transport(settings, self.config.rollout_id)
            if self.transport.mode == "polling":
                self._polling_only = True
                self._start_polling()
                return
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._supervisor = asyncio.create_task(self._supervise(first), name="tickwire-client")
        await first

    async def disconnect(self) -> None:
        """Close the socket, stop polling and background work; `updates()` iterators end.
        Subscriptions are kept: a later `connect()` resubscribes them."""
        self._stopping = True
        self._set_state(ConnectionState.CLOSING)
        self._wake.set()
        if self._ws is not None:
            await self._close(self._ws)
        tasks = [t for t in (self._supervisor, self._poller, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._supervisor = self._poller = None
        self._polling = self._poll_ok = self._polling_only = False
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._set_state(ConnectionState.CLOSED)
        for stream in list(self._streams):
            stream.end()

    async def reconnect(self) -> None:
        """Drop the current socket (if any) and try again now, skipping any backoff wait."""
        if self._polling_only:
            self._poll_now.set()
            return
        if self._supervisor is None or self._supervisor.done():
            await self.connect()
            return
        self._retry_after = None
        self._reconnect_attempts = self._failures = 0
        self._wake.set()
        if self._ws is not None:
            await self._close(self._ws)

    # -- subscriptions ----------------------------------------------------------------

    async def subscribe(self, symbols: Iterable[str], max_hz: float | None = None) -> None:
        """Subscribe now, or, while the socket is down, queue the action for the reconnect
        (and include the symbols in REST polling at once)."""
        names = normalise_symbols(symbols)
        if not names:
            return
        message: dict[str, Any] = {"action": "subscribe", "symbols": names}
        if max_hz is not None:
            message["maxHz"] = max_hz
        await self._act(message)
        for symbol in names:
            self._desired[symbol] = None
            if max_hz is not None:
                self._max_hz[symbol] = max_hz
        self._poll_now.set()

    async def unsubscribe(self, symbols: Iterable[str]) -> None:
        names = [s for s in normalise_symbols(symbols) if s in self._desired]
        if not names:
            return
        await self._act({"action": "unsubscribe", "symbols": names})
        for symbol in names:
            self._desired.pop(symbol, None)
            self._max_hz.pop(symbol, None)
            self._sequences.forget(symbol)

    async def _act(self, message: dict[str, Any]) -> None:
        if self._polling_only:
            return  # polls read `_desired`; no socket will replay actions
        ws = self._ws
        if self._state is ConnectionState.OPEN and ws is not None:
            try:
                await self._send(ws, message)
                return
            except (ConnectionError, RuntimeError, aiohttp.ClientError):
                pass  # the socket died under us: the action waits for the reconnect
        if len(self._outbox) >= self.config.message_queue_size:
            raise QueueFull(f"{len(self._outbox)} actions already wait for the socket")
        self._outbox.append(message)

    # -- the connection loop ----------------------------------------------------------

    async def _supervise(self, first: asyncio.Future[None]) -> None:
        self._failures = self._reconnect_attempts = 0
        try:
            while not self._stopping:
                self._set_state(ConnectionState.RECONNECTING if self._ever_open or self._failures
                                else ConnectionState.CONNECTING)
                try:
                    ws = await self._open()
                except (aiohttp.ClientError, OSError, TimeoutError, ConnectionFailed) as exc:
                    self._failures += 1
                    self._reconnect_attempts += 1
                    error = exc if isinstance(exc, ConnectionFailed) \
                        else ConnectionFailed(f"{self.config.url}: {exc!r}")
                    self._report(error)
                    if not self.config.enable_auto_reconnect:
                        self._set_state(ConnectionState.CLOSED)
                        if not first.done():
                            first.set_exception(error)
                        return
                    if not first.done():
                        first.set_result(None)
                    self._set_state(ConnectionState.RECONNECTING)
                    if self._failures >= self.config.max_reconnect_attempts \
                            and self.config.fallback_to_polling:
                        self._start_polling()
                    await self._pause(self._next_delay(self._reconnect_attempts))
                    continue
                self._failures = self._reconnect_attempts = 0

                def opened() -> None:
                    if not first.done():
                        first.set_result(None)

                close_code = await self._serve(ws, opened)
                opened()  # the first attempt ended, open or not
                if self._stopping:
                    return
                if not self.config.enable_auto_reconnect:
                    self._set_state(ConnectionState.CLOSED)
                    return
                self._set_state(ConnectionState.RECONNECTING)
                self._reconnect_attempts = 1
                if close_code == TOKEN_EXPIRED:
                    continue  # nothing is wrong with the edge: back at once, with a new token
                await self._pause(self._next_delay(self._reconnect_attempts))
        finally:
            if not first.done():
                first.set_result(None)

    async def _open(self) -> aiohttp.ClientWebSocketResponse:
        assert self._session is not None
        await self._fetch_token()
        protocols = ((MSGPACK_SUBPROTOCOL, JSON_SUBPROTOCOL)
                     if self.config.wire_format == "msgpack" else (JSON_SUBPROTOCOL,))
        return await asyncio.wait_for(
            self._session.ws_connect(self.config.url, protocols=protocols, headers=self._auth(),
                                     heartbeat=self.config.heartbeat_interval,
                                     compress=15 if self.config.enable_compression else 0,
                                     max_msg_size=16 * 1024 * 1024),
            self.config.connect_timeout)

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse,
                     opened: Callable[[], None]) -> int | None:
        """One connection's life: restore subscriptions, go live, read until it ends;
        returns the close code the edge sent."""
        self._ws = ws
        close_code: int | None = None
        self._connected_at = _now()
        heartbeat = asyncio.create_task(self._heartbeat(ws), name="tickwire-heartbeat")
        try:
            # The edge's `connected` comes first: read it before going OPEN, so that
            # `client_id` and `edge_id` are known when `connect()` returns.
            hello = await ws.receive(timeout=self.config.connect_timeout)
            if hello.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                self._on_frame(hello.data)
            await self._restore(ws)
            self._ever_open = True
            self._stop_polling()
            self._set_state(ConnectionState.OPEN)
            opened()
            while True:
                frame = await ws.receive()
                if frame.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    self._on_frame(frame.data)
                elif frame.type == aiohttp.WSMsgType.ERROR:
                    self._report(ConnectionFailed(f"socket error: {ws.exception()!r}"))
                elif frame.type == aiohttp.WSMsgType.CLOSE:
                    # Read from the frame: `ws.close_code` turns 1006 when the edge has
                    # already dropped the connection as the close reply goes out.
                    close_code = frame.data
                    break
                elif frame.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                    break
        except (ConnectionError, RuntimeError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self._report(ConnectionFailed(f"connection lost: {exc!r}"))
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await heartbeat
            self._ws = None
            self._held = list(self._desired)
            if not ws.closed:
                await self._close(ws)
        return close_code

    async def _close(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """The close handshake, given `connect_timeout` at most: aiohttp's close() waits for
        the edge's close frame for as long as other frames keep coming."""
        try:
            await asyncio.wait_for(ws.close(), self.config.connect_timeout)
        except asyncio.TimeoutError:
            self._report(ConnectionFailed("the edge did not answer the close handshake"))

    async def _restore(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Resubscribe what the edge had before, then replay the offline actions in order.

        Until this returns the state is not OPEN, so new actions keep queueing behind
        the replay and the edge sees everything in the order it was made."""
        by_rate: dict[float | None, list[str]] = {}
        for symbol in self._held:
            by_rate.setdefault(self._max_hz.get(symbol), []).append(symbol)
        for rate, symbols in by_rate.items():
            message: dict[str, Any] = {"action": "subscribe", "symbols": symbols}
            if rate is not None:
                message["maxHz"] = rate
            await self._send(ws, message)
        while self._outbox:
            await self._send(ws, self._outbox[0])
            self._outbox.popleft()

    async def _heartbeat(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Application pings for the latency figure; aiohttp's protocol pings (same
        interval) close a socket whose peer stopped answering."""
        while not ws.closed:
            stamp = _now().isoformat(timespec="microseconds")
            self._pings[stamp] = time.monotonic()
            while len(self._pings) > 4:
                del self._pings[next(iter(self._pings))]
            await self._send(ws, {"action": "ping", "timestamp": stamp})
            await asyncio.sleep(self.config.heartbeat_interval)

    def _next_delay(self, attempt: int) -> float:
        if self._retry_after is not None:
            delay, self._retry_after = self._retry_after, None
            return delay
        return backoff_delay(attempt, self.config.reconnect_interval, self._uniform)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _send(self, ws: aiohttp.ClientWebSocketResponse, message: dict[str, Any]) -> None:
        if ws.protocol == MSGPACK_SUBPROTOCOL:
            await ws.send_bytes(msgpack.packb(message, use_bin_type=True))
        else:
            await ws.send_str(orjson.dumps(message).decode())

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    async def _fetch_token(self) -> None:
        """Ask the token provider (if any) for a current token; ConnectionFailed if it fails."""
        provider = self.config.token_provider
        if provider is None:
            return
        try:
            token = provider()
            if inspect.isawaitable(token):
                token = await token
        except Exception as exc:
            raise ConnectionFailed(f"token provider failed: {exc!r}") from exc
        if token is not None and not isinstance(token, str):
            raise ConnectionFailed(f"token provider returned {type(token).__name__}, not str")
        self._token = token

    async def _refresh(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """The edge warned that the token lapses soon: send it a fresh one."""
        try:
            await self._fetch_token()
            if self._token and not ws.closed:
                await self._send(ws, {"action": "refresh", "token": self._token})
        except ConnectionFailed as exc:
            self._report(exc)  # the socket lives until the lapse, then reconnects
        except (ConnectionError, RuntimeError, aiohttp.ClientError):
            pass  # the socket is gone; the reconnect fetches a token anyway

    # -- incoming ---------------------------------------------------------------------

    def _on_frame(self, frame: str | bytes) -> None:
        try:
            message = (msgpack.unpackb(frame, raw=False) if isinstance(frame, bytes)
                       else orjson.loads(frame))
            if isinstance(message, dict):
                self._on_message(message)
        except (ValueError, KeyError, TypeError, msgpack.UnpackException) as exc:
            self._report(TickwireError(f"unreadable message from the edge: {exc!r}"))

    def _on_message(self, message: dict[str, Any]) -> None:
        self._message_count += 1
        self._last_message_at = _now()
        kind = message.get("type")
        if kind == "price_update":
            self._on_update(message["symbol"], message["data"], message["seq"],
                            message.get("epoch"), bool(message.get("snapshot")), real_time=True)
        elif kind == "batch_update":
            for entry in message.get("updates", []):
                self._on_update(entry["symbol"], entry["data"], entry["seq"], entry.get("epoch"),
                                bool(entry.get("snapshot")), real_time=True)
        elif kind == "pong":
            sent = self._pings.pop(str(message.get("timestamp")), None)
            if sent is not None:
                self._latencies.append((time.monotonic() - sent) * 1000)
        elif kind == "error":
            self._report(ServerError(str(message.get("code")), str(message.get("message")),
                                     message.get("symbols")))
        elif kind == "reconnect":
            self._retry_after = max(0.0, float(message.get("retryAfterMs", 0)) / 1000)
        elif kind == "token_expiring":
            if self.config.token_provider is not None and self._ws is not None:
                self._spawn(self._refresh(self._ws), "tickwire-refresh")
        elif kind == "connected":
            self.client_id = message.get("clientId")
            self.edge_id = message.get("edgeId")
        for handler in list(self._message_handlers):
            self._call(handler, message)

    def _on_update(self, symbol: str, data: dict[str, Any], seq: int, epoch: str | None,
                   snapshot: bool, real_time: bool) -> None:
        if symbol not in self._desired:
            return  # an update racing an unsubscribe, or a resubscription being undone
        verdict = self._sequences.accept(symbol, int(seq), epoch)
        if verdict is Verdict.STALE:
            return
        if verdict is Verdict.GAP and real_time and not snapshot:
            self._gaps += 1
            self._refetch_soon(symbol)
        update = Update(symbol, data, int(seq), snapshot, epoch, real_time)
        for stream in list(self._streams):
            stream.push(update)

    def _refetch_soon(self, symbol: str) -> None:
        now = time.monotonic()
        if now - self._last_refetch.get(symbol, -GAP_REFETCH_SECONDS) < GAP_REFETCH_SECONDS:
            return
        self._last_refetch[symbol] = now
        self._spawn(self._refetch(symbol), f"tickwire-refetch-{symbol}")

    async def _refetch(self, symbol: str) -> None:
        assert self._fetcher is not None
        try:
            body = await self._fetcher.one(symbol)
        except FallbackError as exc:
            self._report(exc)
            return
        if body is not None:
            data, seq, epoch = split_quote(body)
            self._on_update(symbol, data, seq, epoch, snapshot=True, real_time=False)

    # -- the REST fallback ------------------------------------------------------------

    def _start_polling(self) -> None:
        if self._poller is None:
            self._polling, self._poll_ok = True, False
            self._poller = asyncio.create_task(self._poll_loop(), name="tickwire-poller")
            self._notify()

    def _stop_polling(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
            self._polling = self._poll_ok = False
            self._notify()

    async def _poll_loop(self) -> None:
        assert self._fetcher is not None
        while True:
            self._poll_now.clear()
            symbols = list(self._desired)
            try:
                bodies = await self._fetcher.many(symbols) if symbols else []
            except FallbackError as exc:
                self._report(exc)
                self._set_poll_ok(False)
            else:
                self._set_poll_ok(True)
                if bodies:
                    self._last_message_at = _now()
                for body in bodies:
                    data, seq, epoch = split_quote(body)
                    self._on_update(body["symbol"], data, seq, epoch, snapshot=True,
                                    real_time=False)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poll_now.wait(), self.config.polling_interval)

    def _set_poll_ok(self, ok: bool) -> None:
        if self._poll_ok != ok:
            self._poll_ok = ok
            self._notify()

    # -- plumbing ---------------------------------------------------------------------

    def _set_state(self, state: ConnectionState) -> None:
        if state is not self._state:
            self._state = state
            self._notify()

    def _notify(self) -> None:
        for handler in list(self._connection_handlers):
            self._call(handler, self._state)

    def _report(self, error: TickwireError) -> None:
        self._error_count += 1
        log.debug("tickwire client: %s", error)
        for handler in list(self._error_handlers):
            self._call(handler, error)

    def _count_drop(self) -> None:
        self._dropped += 1

    def _spawn(self, coroutine: Any, name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _call(self, handler: Callable, argument: Any) -> None:
        try:
            result = handler(argument)
            if asyncio.iscoroutine(result):
                self._spawn(result, "tickwire-handler")
        except Exception:
            log.exception("tickwire client handler failed")

    async def __aenter__(self) -> TickwireClient:
        await self.connect()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.disconnect()
