"""Alpaca market data v2: `wss://stream.data.alpaca.markets/v2/iex` (or `/sip`).

Every message is a JSON array of objects told apart by "T":

    ← [{"T":"success","msg":"connected"}]
    → {"action":"auth","key":…,"secret":…}
    ← [{"T":"success","msg":"authenticated"}]      or  [{"T":"error","code":402,"msg":"auth failed"}]
    → {"action":"subscribe","trades":["AAPL"]}
    ← [{"T":"subscription","trades":["AAPL"],"quotes":[],"bars":[]}]
    ← [{"T":"t","S":"AAPL","i":52983525029461,"x":"V","p":191.2,"s":100,
        "t":"2024-03-08T14:30:00.123456789Z","c":["@"],"z":"C"}]
    ← [{"T":"error","code":405,"msg":"symbol limit exceeded"}]

406 (connection limit exceeded) means another connection uses the key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tickwire.ingestor.streams.base import (AuthFailed, Control, Event, JunkFrame, Rejected,
                                            Trade, Wire, positive, size_of, symbol_of)

AUTH_CODES = {401, 402, 403, 404, 409}  # not authenticated, auth failed / timeout, no plan


class ConnectionLimit(ConnectionError):
    """Alpaca's 406: the key already has its connection (elsewhere)."""


class AlpacaAdapter:
    name = "alpaca"
    heartbeat_seconds = None  # WebSocket pings, answered by aiohttp

    def __init__(self, ws_url: str, key_id: str, secret: str, cap: int):
        self._url = ws_url
        self.key = key_id
        self._secret = secret
        self.cap = cap

    def url(self) -> str:
        return self._url

    async def handshake(self, wire: Wire) -> None:
        _expect_success(await wire.receive(), "connected")
        await wire.send({"action": "auth", "key": self.key, "secret": self._secret})
        _expect_success(await wire.receive(), "authenticated")

    def subscribe(self, symbols: list[str]) -> list[Any]:
        return [{"action": "subscribe", "trades": symbols}]

    def unsubscribe(self, symbols: list[str]) -> list[Any]:
        return [{"action": "unsubscribe", "trades": symbols}]

    def heartbeat(self) -> Any:
        return None

    def decode(self, message: Any) -> list[Event]:
        if not isinstance(message, list):
            raise JunkFrame("an Alpaca message is an array")
        return [_event(item) for item in message]


def _expect_success(message: Any, wanted: str) -> None:
    for item in message if isinstance(message, list) else []:
        if not isinstance(item, dict):
            continue
        if item.get("T") == "success" and item.get("msg") == wanted:
            return
        if item.get("T") == "error":
            code, text = item.get("code"), str(item.get("msg", ""))[:120]
            if code == 406:
                raise ConnectionLimit(f"406 {text}")
            if code in AUTH_CODES:
                raise AuthFailed(f"{code} {text}")
            raise ConnectionError(f"{code} {text}")
    raise ConnectionError(f"expected {wanted!r}, got {str(message)[:120]}")


def _event(item: Any) -> Event:
    if not isinstance(item, dict):
        raise JunkFrame("an Alpaca message item is an object")
    kind = item.get("T")
    if kind == "t":
        return Trade(symbol_of(item.get("S")), positive(item.get("p"), "p"),
                     size_of(item.get("s"), "s"), rfc3339(item.get("t")))
    if kind == "subscription":  # the set held, after each request: refusals come as errors
        if not isinstance(item.get("trades"), list):
            raise JunkFrame("subscription without a 'trades' list")
        return Control()
    if kind == "error":
        return Rejected(str(item.get("msg", ""))[:200], str(item.get("code", "error")))
    if isinstance(kind, str):
        return Control()  # quotes, bars, success, statuses
    raise JunkFrame("item without a 'T'")


def rfc3339(raw: Any) -> float:
    """Unix seconds of Alpaca's RFC 3339 time (nanosecond digits cut to microseconds)."""
    if not isinstance(raw, str):
        raise JunkFrame("trade time 't' is not a string")
    text = raw.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}"
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise JunkFrame(f"bad trade time {raw[:40]!r}") from None
