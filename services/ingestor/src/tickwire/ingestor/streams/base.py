"""What every upstream stream adapter shares: the events it decodes and the port it offers.

An adapter knows one provider's wire format and nothing else: how to authenticate on a new
connection, which frames subscribe and unsubscribe, what a received frame means. The
connection loop (connection.py) owns the socket, reconnects and the symbol set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from tickwire.core.models import normalise_symbol


class JunkFrame(ValueError):
    """A frame that is not the provider's format: counted and dropped."""


class AuthFailed(Exception):
    """The provider refused the credentials: the stream waits long before trying again."""


class Trade(NamedTuple):
    """One trade (a NamedTuple: immutable, and built in a third of a frozen dataclass's
    time, once per trade a stream brings)."""

    symbol: str
    price: float
    size: int
    at: float                      # Unix seconds, the provider's trade time
    day_volume: int | None = None  # when the provider sends the session's volume itself


@dataclass(frozen=True, slots=True)
class Rejected:
    """The provider refused symbols (a symbol limit, an unknown symbol); empty `symbols`
    means those of the newest subscribe request."""

    reason: str
    code: str = "error"
    symbols: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Control:
    """A frame with no data for us (pings, heartbeat answers, other message types)."""


Event = Trade | Rejected | Control


class Wire(Protocol):
    """The connection as an adapter's handshake sees it: JSON values in and out."""

    async def send(self, message: Any) -> None: ...
    async def receive(self) -> Any:
        """The next decoded frame; raises ConnectionError when the socket closed."""
        ...


class StreamAdapter(Protocol):
    name: str
    cap: int                         # symbols the provider key may stream
    heartbeat_seconds: float | None  # how often the client must send `heartbeat()`
    key: str                         # the credential the provider counts connections by

    def url(self) -> str: ...
    async def handshake(self, wire: Wire) -> None:
        """After connecting: authenticate. Raises AuthFailed, or ConnectionError."""
        ...
    def subscribe(self, symbols: list[str]) -> list[Any]: ...
    def unsubscribe(self, symbols: list[str]) -> list[Any]: ...
    def heartbeat(self) -> Any: ...
    def decode(self, message: Any) -> list[Event]:
        """Events of one decoded JSON frame; raises JunkFrame."""
        ...


SYMBOLS_REMEMBERED = 10_000
_symbols: dict[str, str] = {}  # provider text → canonical symbol, of valid symbols seen


def symbol_of(raw: Any) -> str:
    """The canonical symbol, or JunkFrame. A stream repeats a few symbols all day, so the
    ones seen are remembered (all forgotten at once beyond SYMBOLS_REMEMBERED)."""
    if type(raw) is str and (known := _symbols.get(raw)) is not None:
        return known
    symbol = normalise_symbol(raw)
    if symbol is None:
        raise JunkFrame(f"bad symbol {str(raw)[:40]!r}")
    if len(_symbols) >= SYMBOLS_REMEMBERED:
        _symbols.clear()
    _symbols[raw] = symbol
    return symbol


def positive(raw: Any, name: str) -> float:
    if type(raw) is float and 0 < raw < math.inf:  # the usual case, checked first
        return raw
    if isinstance(raw, bool):
        raise JunkFrame(f"{name} is not a number")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise JunkFrame(f"{name} is not a number: {str(raw)[:40]!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise JunkFrame(f"{name} {value} is not a positive number")
    return value


def size_of(raw: Any, name: str = "size") -> int:
    if type(raw) is int and raw >= 0:  # the usual case, checked first
        return raw
    if raw is None:
        return 0
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise JunkFrame(f"{name} is not a number")
    if not math.isfinite(raw) or raw < 0:
        raise JunkFrame(f"{name} {raw} is negative")
    return int(raw)
