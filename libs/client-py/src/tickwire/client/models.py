"""What the client hands to its users: states, updates, metrics and errors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class ConnectionState(StrEnum):
    CONNECTING = "CONNECTING"
    OPEN = "OPEN"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"
    RECONNECTING = "RECONNECTING"


@dataclass(frozen=True, slots=True)
class Update:
    """One quote of one symbol. `data` is the StockQuote (camelCase, as on the wire).

    `snapshot` is True for a state read (the snapshot after a subscribe, a gap refetch,
    a poll of the REST fallback) rather than a pushed tick.
    """

    symbol: str
    data: dict[str, Any]
    seq: int
    snapshot: bool = False
    epoch: str | None = None
    real_time: bool = True


@dataclass(frozen=True, slots=True)
class ConnectionMetrics:
    """The seed's ConnectionMetrics; `average_latency` in milliseconds."""

    connection_state: ConnectionState
    connected_at: datetime | None
    last_message_at: datetime | None
    message_count: int
    error_count: int
    reconnect_attempts: int
    average_latency: float
    active_subscriptions: int
    is_real_time: bool = False
    is_polling: bool = False
    gaps_detected: int = 0
    dropped_updates: int = 0


class TickwireError(Exception):
    """Base of everything this client reports through `on_error`."""


class ConnectionFailed(TickwireError):
    """An attempt to open the socket failed (refused, upgrade rejected, timed out)."""


class ServerError(TickwireError):
    """An `error` message from the edge; the connection stays open."""

    def __init__(self, code: str, message: str, symbols: list[str] | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.symbols = symbols or []


class FallbackError(TickwireError):
    """A request to the REST fallback failed."""


class QueueFull(TickwireError):
    """An action made while offline did not fit in `message_queue_size`; nothing changed."""
