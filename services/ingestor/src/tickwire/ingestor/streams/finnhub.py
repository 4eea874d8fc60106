"""Finnhub trades: `wss://ws.finnhub.io?token=KEY`, one symbol per (un)subscribe message.

    → {"type":"subscribe","symbol":"AAPL"}
    ← {"type":"trade","data":[{"s":"AAPL","p":191.2,"t":1700000000123,"v":100,"c":["1"]}]}
    ← {"type":"ping"}
    ← {"type":"error","msg":"Subscribing to too many symbols"}

A bad key is refused at the handshake (HTTP 401). Errors name no symbol: they answer the
newest subscribe request.
"""

from __future__ import annotations

from typing import Any

from yarl import URL

from tickwire.ingestor.streams.base import (Control, Event, JunkFrame, Rejected, Trade, Wire,
                                            positive, size_of, symbol_of)


class FinnhubAdapter:
    name = "finnhub"
    heartbeat_seconds = None

    def __init__(self, ws_url: str, api_key: str, cap: int):
        self._url = ws_url
        self.key = api_key
        self.cap = cap

    def url(self) -> str:
        return str(URL(self._url).update_query(token=self.key))

    async def handshake(self, wire: Wire) -> None:
        return None  # the key rides in the URL

    def subscribe(self, symbols: list[str]) -> list[Any]:
        return [{"type": "subscribe", "symbol": s} for s in symbols]

    def unsubscribe(self, symbols: list[str]) -> list[Any]:
        return [{"type": "unsubscribe", "symbol": s} for s in symbols]

    def heartbeat(self) -> Any:
        return None

    def decode(self, message: Any) -> list[Event]:
        if not isinstance(message, dict):
            raise JunkFrame("a Finnhub message is an object")
        kind = message.get("type")
        if kind == "trade":
            data = message.get("data")
            if not isinstance(data, list):
                raise JunkFrame("trade without a 'data' list")
            return [_trade(item) for item in data]
        if kind == "error":
            return [Rejected(str(message.get("msg", ""))[:200])]
        if isinstance(kind, str):
            return [Control()]  # ping, news and the like
        raise JunkFrame("message without a 'type'")


def _trade(item: Any) -> Trade:
    if not isinstance(item, dict):
        raise JunkFrame("a trade is an object")
    at = item.get("t")
    if isinstance(at, bool) or not isinstance(at, (int, float)):
        raise JunkFrame("trade time 't' is not a number")
    return Trade(symbol_of(item.get("s")), positive(item.get("p"), "p"), size_of(item.get("v")),
                 at / 1000)
