"""The data tickwire moves: quotes, ticks and the WebSocket protocol (DESIGN.md §3).

Pure data: no I/O library is imported here.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

SYMBOL_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9.\-:_]{0,19}$")


def normalise_symbol(raw: object) -> str | None:
    """The canonical (upper-case) symbol, or None when `raw` is not a valid symbol."""
    if not isinstance(raw, str):
        return None
    symbol = raw.strip().upper()
    return symbol if SYMBOL_PATTERN.match(symbol) else None


_iso_cache: tuple[int, str] = (-1, "")  # (Unix ms, its text): the hot path asks often


def iso_now() -> str:
    """Now as ISO-8601 UTC with milliseconds, e.g. 2024-01-10T10:30:00.123Z."""
    global _iso_cache
    ms = time.time_ns() // 1_000_000
    cached_ms, text = _iso_cache
    if ms != cached_ms:
        text = iso_from_unix(ms / 1000)
        _iso_cache = (ms, text)
    return text


_second_cache: tuple[int, str] = (-1, "")  # (Unix second, its text up to the '.')


def iso_from_unix(seconds: float) -> str:
    """`seconds` as ISO-8601 UTC with milliseconds, exactly as `datetime.fromtimestamp`
    would give it (microseconds rounded half-even, then truncated to milliseconds). The
    text of the whole second is reused while the second lasts: strftime is the cost."""
    global _second_cache
    frac, whole = math.modf(seconds)
    micros = round(frac * 1e6)
    second = int(whole)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    elif micros < 0:
        second, micros = second - 1, micros + 1_000_000
    cached, prefix = _second_cache
    if second != cached:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        _second_cache = (second, prefix)
    return f"{prefix}{micros // 1000:03d}Z"


def unix_from_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class ErrorCode(StrEnum):
    INVALID_MESSAGE = "INVALID_MESSAGE"
    UNSUPPORTED_ACTION = "UNSUPPORTED_ACTION"
    INVALID_SYMBOL = "INVALID_SYMBOL"
    SUBSCRIPTION_FAILED = "SUBSCRIPTION_FAILED"
    SUBSCRIPTION_LIMIT_EXCEEDED = "SUBSCRIPTION_LIMIT_EXCEEDED"
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    DATA_STALE = "DATA_STALE"
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"


class InvalidQuote(ValueError):
    """A provider answer that must never be published (junk, non-positive or NaN price)."""


@dataclass(frozen=True, slots=True)
class StockQuote:
    symbol: str
    price: float
    change: float
    change_percent: float
    volume: int
    high: float
    low: float
    open: float
    previous_close: float
    timestamp: str
    source: str

    def __post_init__(self) -> None:
        for n in (self.price, self.change, self.change_percent, self.high, self.low,
                  self.open, self.previous_close):  # a loop: a stream builds a quote per tick
            if not isinstance(n, (int, float)) or not math.isfinite(n):
                raise InvalidQuote(f"{self.symbol}: non-finite number in quote")
        if self.price <= 0:
            raise InvalidQuote(f"{self.symbol}: price {self.price} is not positive")
        if self.volume < 0:
            raise InvalidQuote(f"{self.symbol}: negative volume {self.volume}")

    def to_wire(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "price": self.price,
            "change": self.change,
            "changePercent": self.change_percent,
            "volume": self.volume,
            "high": self.high,
            "low": self.low,
            "open": self.open,
            "previousClose": self.previous_close,
            "timestamp": self.timestamp,
            "source": self.source,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> StockQuote:
        return cls(
            symbol=data["symbol"],
            price=data["price"],
            change=data["change"],
            change_percent=data["changePercent"],
            volume=data["volume"],
            high=data["high"],
            low=data["low"],
            open=data["open"],
            previous_close=data["previousClose"],
            timestamp=data["timestamp"],
            source=data["source"],
        )

    def same_market_state(self, other: StockQuote | None) -> bool:
        """True when `other` carries the same numbers (a refetch that changed nothing)."""
        # Price first: it is what differs in most fresh quotes.
        return (other is not None and self.price == other.price and self.volume == other.volume
                and self.high == other.high and self.low == other.low
                and self.open == other.open and self.previous_close == other.previous_close)


@dataclass(slots=True)
class Tick:
    """One published update of a symbol: the payload of its Redis channel and cache key.

    `seq` grows by one per tick of a symbol within an `epoch`; a new epoch restarts it.
    Never changed once made (one tick is shared by every session that receives it); not
    `frozen` only because a frozen dataclass takes twice as long to build, once per tick
    the edge receives.
    """

    symbol: str
    data: dict[str, Any]
    seq: int
    epoch: str
    published_at: int  # Unix nanoseconds
    traceparent: str | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "symbol": self.symbol,
            "data": self.data,
            "seq": self.seq,
            "epoch": self.epoch,
            "publishedAt": self.published_at,
        }
        if self.traceparent:
            wire["traceparent"] = self.traceparent
        return wire

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> Tick:
        data = wire["data"]
        if not isinstance(data, dict):
            raise TypeError("tick data is not a map")
        return cls(str(wire["symbol"]), data, int(wire["seq"]), str(wire["epoch"]),
                   int(wire["publishedAt"]), wire.get("traceparent"))

    @property
    def age_ms(self) -> int:
        return max(0, (time.time_ns() - self.published_at) // 1_000_000)

    def is_newer_than(self, epoch: str | None, seq: int) -> bool:
        """Whether this tick should be delivered after one seen at (epoch, seq)."""
        return epoch != self.epoch or self.seq > seq


class FeedState(StrEnum):
    STALE = "stale"
    RECOVERED = "recovered"


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """A change in whether quotes of some symbols flow, published by the ingestor once per
    change on the Redis channel `market-data:status` as msgpack of `to_wire()`:
    `{"type": "stale"|"recovered", "symbols": [...], "reason": str, "ts": Unix ms}`.

    `stale`: every provider failed for these symbols and their newest data is older than
    the ingestor's freshness window (the cached quote is still served). `recovered`: quotes
    for them arrived again. Edges forward `stale` to subscribed clients as an `error` with
    code DATA_STALE and `symbols`.
    """

    state: FeedState
    symbols: tuple[str, ...]
    reason: str = ""
    ts: int = 0  # Unix milliseconds

    def to_wire(self) -> dict[str, Any]:
        return {"type": str(self.state), "symbols": list(self.symbols), "reason": self.reason,
                "ts": self.ts}

    @classmethod
    def from_wire(cls, wire: Any) -> FeedStatus:
        """Raises ValueError for anything but a well-formed status message."""
        if not isinstance(wire, dict):
            raise ValueError("a feed status must be a map")
        state = FeedState(wire.get("type"))
        symbols = wire.get("symbols")
        if not isinstance(symbols, list) or not symbols or not all(
                normalise_symbol(s) == s for s in symbols):
            raise ValueError(f"invalid feed status symbols {symbols!r:.80}")
        reason, ts = wire.get("reason", ""), wire.get("ts", 0)
        return cls(state, tuple(symbols), reason if isinstance(reason, str) else "",
                   ts if isinstance(ts, int) else 0)


# ---- client → server -------------------------------------------------------------


class ProtocolError(Exception):
    """A client message the edge rejects; the connection stays open."""

    def __init__(self, code: ErrorCode, message: str, symbols: list[str] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.symbols = symbols


@dataclass(frozen=True, slots=True)
class Subscribe:
    symbols: list[str]
    invalid: list[str] = field(default_factory=list)
    max_hz: float | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    symbols: list[str]
    invalid: list[str] = field(default_factory=list)


MAX_PING_TIMESTAMP = 64  # echoed back in the pong: bounded, so a ping cannot park memory


@dataclass(frozen=True, slots=True)
class Ping:
    timestamp: str | None = None


@dataclass(frozen=True, slots=True)
class Refresh:
    """A new token for an open socket; checked by the edge, not here."""

    token: str


ClientMessage = Subscribe | Unsubscribe | Ping | Refresh


def _split_symbols(raw: object) -> tuple[list[str], list[str]]:
    if not isinstance(raw, list) or not raw:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "'symbols' must be a non-empty array")
    valid: dict[str, None] = {}  # ordered set: a watchlist keeps its order, duplicates fold
    invalid: list[str] = []
    for item in raw:
        symbol = normalise_symbol(item)
        if symbol is None:
            # Never repr() client data: a deeply nested value would recurse.
            invalid.append(item[:40] if isinstance(item, str) else
                           str(item) if isinstance(item, (int, float, bool)) or item is None else
                           f"<{type(item).__name__}>")
        else:
            valid[symbol] = None
    return list(valid), invalid


def parse_client_message(message: object) -> ClientMessage:
    """Validate a decoded client frame; raises ProtocolError with the code to send back."""
    if not isinstance(message, dict):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "a message must be an object")
    action = message.get("action")
    if not isinstance(action, str):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "missing 'action'")
    if action == "ping":
        timestamp = message.get("timestamp")
        if timestamp is not None and (not isinstance(timestamp, str)
                                      or len(timestamp) > MAX_PING_TIMESTAMP):
            raise ProtocolError(ErrorCode.INVALID_MESSAGE,
                                f"'timestamp' must be a string of at most {MAX_PING_TIMESTAMP} "
                                "characters")
        return Ping(timestamp=timestamp)
    if action == "subscribe":
        max_hz = message.get("maxHz")
        if max_hz is not None and (
            isinstance(max_hz, bool) or not isinstance(max_hz, (int, float))
            or not math.isfinite(max_hz) or max_hz <= 0
        ):
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, "'maxHz' must be a number > 0")
        valid, invalid = _split_symbols(message.get("symbols"))
        return Subscribe(valid, invalid, float(max_hz) if max_hz is not None else None)
    if action == "unsubscribe":
        valid, invalid = _split_symbols(message.get("symbols"))
        return Unsubscribe(valid, invalid)
    if action == "refresh":
        token = message.get("token")
        if not isinstance(token, str) or not token:
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, "'token' must be a non-empty string")
        return Refresh(token)
    raise ProtocolError(ErrorCode.UNSUPPORTED_ACTION, f"unsupported action {action[:40]!r}")


# ---- server → client -------------------------------------------------------------


def connected_message(client_id: str, edge_id: str) -> dict[str, Any]:
    return {
        "type": "connected",
        "message": "Connected to tickwire",
        "clientId": client_id,
        "edgeId": edge_id,
        "timestamp": iso_now(),
    }


def ack_message(kind: str, symbols: list[str]) -> dict[str, Any]:
    """`subscribed` or `unsubscribed`."""
    return {"type": kind, "symbols": symbols, "timestamp": iso_now()}


def price_update_message(tick: Tick, snapshot: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "price_update",
        "symbol": tick.symbol,
        "data": tick.data,
        "seq": tick.seq,
        "epoch": tick.epoch,
        "timestamp": iso_now(),
    }
    if snapshot:
        message["snapshot"] = True
    return message


def batch_update_message(ticks: list[Tick]) -> dict[str, Any]:
    return {
        "type": "batch_update",
        "updates": [
            {"symbol": t.symbol, "data": t.data, "seq": t.seq, "epoch": t.epoch} for t in ticks
        ],
        "timestamp": iso_now(),
    }


def error_message(code: ErrorCode, message: str, symbols: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "error", "code": str(code), "message": message,
                            "timestamp": iso_now()}
    if symbols:
        body["symbols"] = symbols
    return body


def token_expiring_message(expires_in_ms: int) -> dict[str, Any]:
    return {"type": "token_expiring", "expiresInMs": expires_in_ms}


def refreshed_message(expires_in_ms: int | None) -> dict[str, Any]:
    return {"type": "refreshed", "expiresInMs": expires_in_ms, "timestamp": iso_now()}


def pong_message(client_timestamp: str | None) -> dict[str, Any]:
    return {"type": "pong", "timestamp": client_timestamp, "serverTime": iso_now()}


def reconnect_message(retry_after_ms: int) -> dict[str, Any]:
    return {"type": "reconnect", "reason": "draining", "retryAfterMs": retry_after_ms}
