"""One client connection: its subscriptions and its single writer.

Guarantees:
- Per symbol, updates leave in `seq` order; within an epoch a `seq` is never sent twice
  and never after a newer one (a new epoch is followed).
- The outgoing buffer is bounded: control messages (acks, errors, pongs) queue in order,
  updates CONFLATE to the newest pending one per symbol. A slow client converges to the
  latest prices and never holds back anyone else.
- Control messages queued before an update was offered are written before it.
- Several pending updates go out as one `batch_update` frame.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import orjson
from aiohttp import WSMsgType, web
from prometheus_client import Counter

from tickwire.core.codecs import encode_msgpack
from tickwire.core.models import Tick, batch_update_message, price_update_message
from tickwire.edge.frames import TickFrames

log = logging.getLogger(__name__)

CONFLATED = Counter("tickwire_edge_conflated_updates_total",
                    "Updates replaced by a newer one before they were written")
MESSAGES_SENT = Counter("tickwire_edge_messages_sent_total", "Frames written to clients", ["type"])


class Session:
    def __init__(self, client_id: str, ws: web.WebSocketResponse, binary: bool,
                 control_limit: int = 256):
        self.client_id = client_id
        self.ws = ws
        self.binary = binary
        self.symbols: set[str] = set()
        self._last: dict[str, tuple[str, int]] = {}  # symbol → (epoch, seq) last offered
        self._pending: dict[str, tuple[TickFrames | None, Tick, bool]] = {}
        self._control: deque[bytes] = deque()
        self._control_limit = control_limit
        self._wake = asyncio.Event()
        self._writer: asyncio.Task | None = None
        self.closed = False

    # -- what others call (synchronous: never awaits, never blocks) -------------------

    def send(self, message: dict[str, Any]) -> None:
        """Queue a control message; written before any update offered after it."""
        if len(self._control) >= self._control_limit:
            return  # a client flooding requests without reading; the rate limit will close it
        self._control.append(self._encode(message))
        self._wake.set()

    def offer(self, tick: Tick, frames: TickFrames | None = None, snapshot: bool = False) -> bool:
        """Offer an update; returns False when it is not newer than what this client has."""
        last = self._last.get(tick.symbol)
        if last is not None and not tick.is_newer_than(*last):
            return False
        self._last[tick.symbol] = (tick.epoch, tick.seq)
        if tick.symbol in self._pending:
            CONFLATED.inc()
        self._pending[tick.symbol] = (frames, tick, snapshot)
        self._wake.set()
        return True

    def forget(self, symbol: str) -> None:
        """After an unsubscribe: drop what is pending and start afresh if it comes back."""
        self._pending.pop(symbol, None)
        self._last.pop(symbol, None)

    # -- the writer -------------------------------------------------------------------

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name=f"writer-{self.client_id}")

    async def stop(self) -> None:
        self.closed = True
        if self._writer is not None:
            self._writer.cancel()
            try:
                await self._writer
            except (asyncio.CancelledError, Exception):
                pass

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._control:
                    await self._write(self._control.popleft(), "control")
                if self._pending:
                    pending, self._pending = self._pending, {}
                    frame, kind = self._update_frame(list(pending.values()))
                    await self._write(frame, kind)
        except (ConnectionResetError, RuntimeError) as exc:
            log.debug("client gone while writing", extra={"client": self.client_id,
                                                           "error": repr(exc)})

    def _update_frame(self, pending: list[tuple[TickFrames | None, Tick, bool]]) -> tuple[bytes, str]:
        if len(pending) == 1:
            frames, tick, snapshot = pending[0]
            if frames is not None and not snapshot:
                return (frames.msgpack if self.binary else frames.json), "price_update"
            return self._encode(price_update_message(tick, snapshot=snapshot)), "price_update"
        message = batch_update_message([tick for _, tick, _ in pending])
        for entry, (_, _, snapshot) in zip(message["updates"], pending):
            if snapshot:
                entry["snapshot"] = True
        return self._encode(message), "batch_update"

    async def _write(self, frame: bytes, kind: str) -> None:
        if self.ws.closed:
            raise ConnectionResetError("socket closed")
        await self.ws.send_frame(frame, WSMsgType.BINARY if self.binary else WSMsgType.TEXT)
        MESSAGES_SENT.labels(kind).inc()

    def _encode(self, message: dict[str, Any]) -> bytes:
        return encode_msgpack(message) if self.binary else orjson.dumps(message)
