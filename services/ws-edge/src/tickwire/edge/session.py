"""One client (a WebSocket or an SSE stream): its subscriptions and its single writer.

Guarantees:
- Per symbol, updates leave in `seq` order; within an epoch a `seq` is never sent twice
  and never after a newer one; a new epoch (the sequence restarted) is followed. Only
  symbols the client watches are sent.
- No gaps for a client that keeps up: a burst of ticks queues in full while the writer
  is free. Bounded memory for one that does not: once a write waits on the peer, or more
  than `queue_limit` updates are pending, updates CONFLATE to the newest pending one per
  symbol. A slow client converges to the latest prices and never holds back anyone else.
  Control messages (acks, errors, pongs) queue in order up to a limit in count and in
  bytes; over either and the client is closed with 1013 (`on_overflow`): an ack or
  error is never dropped while the socket stays open.
- Control messages queued before an update was offered are written before it.
- Pending updates go out together: one `batch_update` frame on a socket.
- The fast path: while a socket has no writer and its transport is not backed up, a
  live update's pre-built frame (the same bytes for every socket of its format and
  compression), or a pass's first control message with nothing queued ahead of it, is
  collected and written with every other frame due to that socket in one `writelines`,
  once per event-loop pass: no task switch, no per-tick encoding. What waits for that
  write is bounded like a queue: past `queue_limit` frames, updates take the writer's
  path (and conflate).
- With `maxHz` a symbol is sent at most that often, always its newest value.

State: everything here is written only by the session's own methods; the hub calls
`watch` / `unwatch`, the read loop `heard` and the rate checks.

Backpressure: a write that finds the transport full waits on the sink's drain signal,
never a timer; `flush` waits on the writer going idle.

Memory: an idle client holds no task. The writer task exists only while something is
queued for it and ends when the queue is empty; the next queued message starts another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import Counter

from tickwire.core.codecs import encode_msgpack
from tickwire.core.models import Tick
from tickwire.edge.frames import FRAME_FOR, TickFrames, batch_json, batch_msgpack
from tickwire.edge.limits import Throttle, TokenBucket
from tickwire.edge.observability import HOT, observe_first_write, observe_first_writes
from tickwire.edge.transport import Sink

if TYPE_CHECKING:
    from tickwire.edge.auth import Principal

log = logging.getLogger(__name__)

DROPPED = Counter("tickwire_edge_dropped_messages_total",
                  "Control messages beyond a client's queue limit (the client is closed, 1013)")

CONTROL_BYTE_LIMIT = 256 * 1024  # queued control frames of one client, in bytes

_PING = object()  # a queued WebSocket ping, written by the writer like any frame


class Subscriptions(dict[str, tuple[str, int] | None]):
    """The symbols a client watches, each with the (epoch, seq) last offered to it (None
    before the first). A symbol that comes back starts afresh."""

    __slots__ = ()


class Session:
    __slots__ = ("client_id", "sink", "binary", "address", "max_symbols", "symbols", "inbound",
                 "changes", "rate_limited_since", "last_heard", "last_ping", "blocked_since",
                 "closed", "_pending", "_pending_count", "_queue_limit", "_control",
                 "_control_limit", "_control_bytes", "_control_byte_limit", "_on_overflow",
                 "_throttle", "_direct", "_frame_for", "_timer", "_writer", "_idle",
                 "principal", "user_inbound", "_waiting")

    def __init__(self, client_id: str, sink: Sink, *, max_symbols: int = 500,
                 control_limit: int = 256, control_byte_limit: int = CONTROL_BYTE_LIMIT,
                 queue_limit: int = 256, rate: float = 50.0,
                 burst: float = 100.0, change_rate: float = 100.0, change_burst: float = 1000.0,
                 address: str = "", on_overflow: Callable[[Session], None] | None = None,
                 principal: Principal | None = None, user_inbound: TokenBucket | None = None,
                 waiting: set[Session] | None = None):
        self.client_id = client_id
        self.sink = sink
        self.binary = sink.binary
        self.address = address
        self.max_symbols = max_symbols
        self.symbols = Subscriptions()
        self.inbound = TokenBucket(rate, burst)
        # The client's identity (replaced by a refresh) and the message bucket its subject's
        # connections on this edge share (None for anonymous clients).
        self.principal = principal
        self.user_inbound = user_inbound
        # Symbol changes (each symbol a subscribe adds or an unsubscribe removes): what
        # reaches the registry, so what is limited, not the messages that carry them. A
        # full subscription always fits twice (a page reload).
        self.changes = TokenBucket(change_rate, max(change_burst, 2.0 * max_symbols))
        self.rate_limited_since: float | None = None
        self.last_heard = time.monotonic()
        self.last_ping = self.last_heard
        self.blocked_since: float | None = None  # set while a write waits on the peer
        # The set this session is in while `blocked_since` is set: what the sweep reads
        # to find slow consumers without looking at every session.
        self._waiting = waiting if waiting is not None else set()
        self.closed = False
        # symbol → its pending updates in seq order (one, once conflating)
        self._pending: dict[str, list[TickFrames]] = {}
        self._pending_count = 0
        self._queue_limit = queue_limit
        # A list, not a deque: an empty deque still holds a 0.7 KiB block, and this is short.
        self._control: list[Any] = []
        self._control_limit = control_limit
        self._control_bytes = 0  # of the queued control frames
        self._control_byte_limit = control_byte_limit
        self._on_overflow = on_overflow
        self._throttle: Throttle | None = None  # until a symbol gets a maxHz
        # Pre-built frames for the next flush: one frame, or a list of them.
        self._direct: bytes | list[bytes] | None = None
        self._frame_for = FRAME_FOR[(sink.binary, sink.deflate)]
        self._timer: asyncio.TimerHandle | None = None
        # Running while something is queued; a finished one stays after a failed write,
        # so nothing more is written to a client that is gone.
        self._writer: asyncio.Task | None = None
        self._idle: asyncio.Event | None = None  # made only when someone waits in `flush`

    # -- what the hub and the read loop call ------------------------------------------

    def watch(self, symbol: str) -> None:
        self.symbols.setdefault(symbol, None)

    def unwatch(self, symbol: str) -> None:
        """Stop watching `symbol` and drop what is pending for it."""
        self.symbols.pop(symbol, None)
        self._pending_count -= len(self._pending.pop(symbol, ()))
        if self._throttle is not None:
            self._throttle.clear(symbol)

    def heard(self, now: float) -> None:
        self.last_heard = now

    def over_rate(self, now: float) -> float | None:
        """None while the client's messages are within its rate; else how long this
        episode of excess has lasted (0.0 for its first message). An episode ends only
        when the client has calmed down enough for its bucket to refill."""
        bucket = self.inbound
        shared = self.user_inbound
        if bucket.take(now) and (shared is None or shared.take(now)):
            if self.rate_limited_since is not None and bucket.tokens >= bucket.burst - 1:
                self.rate_limited_since = None
            return None
        if self.rate_limited_since is None:
            self.rate_limited_since = now
            return 0.0
        return now - self.rate_limited_since

    def take_changes(self, now: float, count: int) -> bool:
        """Spend `count` symbol changes if the client's budget has them."""
        return count == 0 or self.changes.take(now, count)

    # -- what others call: synchronous, never blocks ----------------------------------

    def send(self, message: dict[str, Any]) -> None:
        """Queue a control message; written before any update offered after it. A client
        whose queue is full is closed (1013) rather than lose the message silently."""
        if self.closed:
            return
        frame = self._encode(message)
        if self._fast_path_free():
            prebuilt = self.sink.prebuilt(frame)
            if prebuilt is not None:
                self._collect(prebuilt)
                HOT.sent["control"] += 1
                return
        if (len(self._control) >= self._control_limit
                or self._control_bytes + len(frame) > self._control_byte_limit):
            DROPPED.inc()
            self.closed = True  # nothing more is queued for a client that is being closed
            if self._on_overflow is not None:
                self._on_overflow(self)
            return
        self._control_bytes += len(frame)
        # orjson's bytes keep its whole working buffer (4 KiB at least): a queued message
        # holds a copy of its own size instead.
        self._control.append(frame if self.binary else bytes(memoryview(frame)))
        self._kick()

    def queue_ping(self, now: float) -> None:
        self.last_ping = now
        if self._fast_path_free():
            frame = self.sink.prebuilt_ping()
            if frame is not None:
                self._collect(frame)
                return
        self._control.append(_PING)
        self._kick()

    def _fast_path_free(self) -> bool:
        """Whether a control frame may go out with this pass's pre-built frames, no task:
        nothing queued ahead of it, and nothing collected yet this pass (one per pass at
        most, so the transport's limit bounds what a peer that does not read, but sends
        and is answered, holds here)."""
        return (self._writer is None and self._direct is None and not self._control
                and not self._pending and self.sink.can_write_now())

    def offer(self, tick: Tick, frames: TickFrames) -> bool:
        """Offer an update (a live tick, or a snapshot when `frames.snapshot`); False
        when this client does not watch its symbol or has it already (the same or a
        newer seq of the epoch)."""
        symbol = tick.symbol
        symbols = self.symbols
        last = symbols.get(symbol, False)
        if last is False:
            return False
        if last is not None and not tick.is_newer_than(*last):
            return False
        # One tuple per tick, shared by its watchers: a tuple per watcher lived until the
        # symbol's next tick and fed the garbage collector's full passes (~150 ms each).
        symbols[symbol] = frames.mark
        throttle = self._throttle
        direct = self._direct
        if (self._writer is None and not frames.snapshot and self.sink.direct
                and not self._pending and not (throttle and throttle.limits(symbol))
                and (type(direct) is not list or len(direct) < self._queue_limit)
                and self.sink.can_write_now()):
            self._collect(self._frame_for(frames))
            HOT.sent["price_update"] += 1
            if not frames.written:
                observe_first_write(frames, tick)
            return True
        queued = self._pending.get(symbol)
        if queued is None:
            self._pending[symbol] = [frames]
            self._pending_count += 1
        elif (self.blocked_since is None and self._pending_count < self._queue_limit
              and not (throttle and throttle.limits(symbol))):
            queued.append(frames)
            self._pending_count += 1
        else:
            HOT.conflated += len(queued)
            self._pending_count -= len(queued) - 1
            self._pending[symbol] = [frames]
        self._kick()
        return True

    def _collect(self, frame: bytes) -> None:
        """Add a pre-built frame to those written at the end of this event-loop pass."""
        direct = self._direct
        if direct is None:  # the usual case, one frame per pass: no list
            self._direct = frame
            DIRECT_FLUSH.add(self)
        elif type(direct) is bytes:
            self._direct = [direct, frame]
        else:
            direct.append(frame)

    def set_max_hz(self, symbols: list[str], max_hz: float | None) -> None:
        if self._throttle is None:
            if max_hz is None:
                return
            self._throttle = Throttle()
        for symbol in symbols:
            self._throttle.set(symbol, max_hz)
        self._kick()

    def _kick(self) -> None:
        if self._writer is None and not self.closed:
            self._writer = asyncio.get_running_loop().create_task(
                self._write_loop(), name=f"writer-{self.client_id}")

    def flush_direct(self) -> None:
        """Write the collected pre-built frames (before anything the writer sends). Never
        raises: a failed write tells the sink its peer is gone."""
        frames = self._direct
        if frames is not None:
            self._direct = None
            if not self.closed:
                try:
                    self.sink.write_now(frames)
                except (ConnectionError, RuntimeError, OSError):
                    self.sink.lost()

    @property
    def pending_updates(self) -> int:
        return self._pending_count

    # -- the writer -------------------------------------------------------------------

    async def stop(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._writer is not None and self._writer is not asyncio.current_task():
            self._writer.cancel()
            try:
                await self._writer
            except (asyncio.CancelledError, Exception):
                pass
        self._went_idle()

    async def flush(self, timeout: float) -> None:
        """Wait until what is queued now has been written (best effort, bounded)."""
        if self._writer is None:
            self.flush_direct()  # what this pass collected: due now, not at its end
        if self.closed or (self._writer is None and not self._control and not self._pending):
            return
        if self._idle is None:
            self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            pass

    def _went_idle(self) -> None:
        if self._idle is not None:
            self._idle.set()
            self._idle = None

    async def _write_loop(self) -> None:
        """Until nothing is due: what the fast path collected, the control messages in
        order, then the pending updates. Updates held back by `maxHz` wait for their
        timer, which starts the next writer."""
        try:
            while True:
                self.flush_direct()
                while self._control:
                    item = self._control.pop(0)
                    if item is _PING:
                        await self._timed(self.sink.ping())
                    else:
                        self._control_bytes -= len(item)
                        await self._write(item, "control")
                if not (self._pending and await self._write_updates()):
                    break
        except (ConnectionResetError, ConnectionError, RuntimeError) as exc:
            log.debug("client gone while writing", extra={"client": self.client_id,
                                                           "error": repr(exc)})
            self.sink.lost()
            self._went_idle()
            return
        self._writer = None
        if not self._pending:
            self._went_idle()

    async def _write_updates(self) -> bool:
        """Writes the pending updates that are due; False when none was."""
        if self._throttle:
            now = time.monotonic()
            due = {s: p for s, p in self._pending.items() if self._throttle.due_at(s) <= now}
            for symbol in due:
                del self._pending[symbol]
                self._throttle.sent(symbol, now)
            if self._pending:
                self._wake_at(min(self._throttle.due_at(s) for s in self._pending))
        else:
            due, self._pending = self._pending, {}
        if not due:
            return False
        entries = [frames for queued in due.values() for frames in queued]
        self._pending_count -= len(entries)
        if len(entries) == 1:
            await self._write(self._single(entries[0]), "price_update")
        elif self.sink.batching:
            frame = batch_msgpack(entries) if self.binary else batch_json(entries)
            await self._write(frame, "batch_update")
        else:
            for frames in entries:
                await self._write(self._single(frames), "price_update")
        observe_first_writes(entries)
        return True

    def _single(self, frames: TickFrames) -> bytes:
        return frames.msgpack if self.binary else frames.json

    def _wake_at(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(loop.time() + max(0.0, when - time.monotonic()), self._kick)

    async def _write(self, frame: bytes, kind: str) -> None:
        await self._timed(self.sink.write(frame))
        HOT.sent[kind] += 1

    async def _timed(self, write) -> None:
        """Marks how long the peer keeps us waiting; the edge's sweeper sheds clients
        that stay blocked past the staleness budget."""
        self.blocked_since = time.monotonic()
        self._waiting.add(self)
        try:
            await write
        finally:
            self.blocked_since = None
            self._waiting.discard(self)

    def _encode(self, message: dict[str, Any]) -> bytes:
        return encode_msgpack(message) if self.binary else orjson.dumps(message)


FLUSH_BUDGET = 0.001  # seconds of socket writes in one event-loop pass


class DirectFlush:
    """Collects the sessions that got pre-built frames during one event-loop pass and
    writes each one's frames with a single `writelines` when the pass is over. A flush
    writes for at most FLUSH_BUDGET, then lets the loop run (timers, reads, handshakes)
    and goes on with the rest, in order, in the next pass: a write per socket to a few
    thousand sockets is tens of milliseconds."""

    def __init__(self) -> None:
        self._sessions: list[Session] = []

    def add(self, session: Session) -> None:
        if not self._sessions:
            asyncio.get_running_loop().call_soon(self.flush)
        self._sessions.append(session)

    def flush(self) -> None:
        sessions, self._sessions = self._sessions, []
        clock = time.perf_counter
        deadline = clock() + FLUSH_BUDGET
        for index, session in enumerate(sessions):
            session.flush_direct()
            if clock() > deadline and index + 1 < len(sessions):
                # The rest go first in the next pass; sessions collected until then join
                # after them.
                self._sessions = sessions[index + 1:]
                asyncio.get_running_loop().call_soon(self.flush)
                return


DIRECT_FLUSH = DirectFlush()
