"""Kafka event payloads (DESIGN.md §4): JSON objects with `"v": 1`.

Pure data: no I/O library is imported here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from tickwire.core.models import normalise_symbol

EVENT_VERSION = 1


class EventError(ValueError):
    """A record that is not a valid tickwire event (skipped and counted, never fatal)."""


class SubscriptionEventType(StrEnum):
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    EDGE_HEARTBEAT = "edge_heartbeat"
    EDGE_DOWN = "edge_down"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class SubscriptionEvent:
    """edge → registry. `symbol` for subscribe/unsubscribe, `symbols` for heartbeats."""

    type: SubscriptionEventType
    edge_id: str
    symbol: str | None = None
    symbols: tuple[str, ...] = ()
    ts: int = 0

    def key(self) -> bytes:
        """Keyed by symbol so one symbol's transitions stay ordered; edge-wide events by edge."""
        return (self.symbol or self.edge_id).encode()

    def encode(self) -> bytes:
        body: dict[str, Any] = {"v": EVENT_VERSION, "type": str(self.type), "edgeId": self.edge_id,
                                "ts": self.ts or now_ms()}
        if self.type in (SubscriptionEventType.SUBSCRIBE, SubscriptionEventType.UNSUBSCRIBE):
            body["symbol"] = self.symbol
        elif self.type == SubscriptionEventType.EDGE_HEARTBEAT:
            body["symbols"] = list(self.symbols)
        return orjson.dumps(body)

    @classmethod
    def decode(cls, raw: bytes) -> SubscriptionEvent:
        body = _load(raw)
        try:
            kind = SubscriptionEventType(body.get("type"))
        except ValueError:
            raise EventError(f"unknown subscription event type {body.get('type')!r}") from None
        edge_id = body.get("edgeId")
        if not isinstance(edge_id, str) or not edge_id:
            raise EventError("subscription event without edgeId")
        ts = body.get("ts") if isinstance(body.get("ts"), int) else 0
        if kind in (SubscriptionEventType.SUBSCRIBE, SubscriptionEventType.UNSUBSCRIBE):
            symbol = normalise_symbol(body.get("symbol"))
            if symbol is None:
                raise EventError(f"invalid symbol {body.get('symbol')!r}")
            return cls(kind, edge_id, symbol=symbol, ts=ts)
        if kind == SubscriptionEventType.EDGE_HEARTBEAT:
            raw_symbols = body.get("symbols")
            if not isinstance(raw_symbols, list):
                raise EventError("edge_heartbeat without symbols")
            symbols = tuple(s for s in map(normalise_symbol, raw_symbols) if s is not None)
            return cls(kind, edge_id, symbols=symbols, ts=ts)
        return cls(kind, edge_id, ts=ts)


@dataclass(frozen=True, slots=True)
class ActiveSymbolEvent:
    """registry → ingestors, keyed by symbol on a compacted topic: its latest value wins."""

    symbol: str
    active: bool
    subscribers: int
    ts: int = 0

    def key(self) -> bytes:
        return self.symbol.encode()

    def encode(self) -> bytes:
        return orjson.dumps({"v": EVENT_VERSION, "symbol": self.symbol, "active": self.active,
                             "subscribers": self.subscribers, "ts": self.ts or now_ms()})

    @classmethod
    def decode(cls, raw: bytes) -> ActiveSymbolEvent:
        body = _load(raw)
        symbol = normalise_symbol(body.get("symbol"))
        if symbol is None or not isinstance(body.get("active"), bool):
            raise EventError(f"invalid active-symbol event {body!r:.120}")
        subscribers = body.get("subscribers")
        return cls(symbol, body["active"], subscribers if isinstance(subscribers, int) else 0,
                   body.get("ts") if isinstance(body.get("ts"), int) else 0)


def _load(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventError(f"not JSON: {exc}") from None
    if not isinstance(body, dict) or body.get("v") != EVENT_VERSION:
        raise EventError("not a v1 tickwire event")
    return body
