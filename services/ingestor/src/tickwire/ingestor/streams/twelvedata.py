"""Twelve Data price stream: `wss://ws.twelvedata.com/v1/quotes/price?apikey=KEY`.

    → {"action":"subscribe","params":{"symbols":"AAPL,MSFT"}}
    ← {"event":"subscribe-status","status":"ok","success":[{"symbol":"AAPL",…}],"fails":[]}
    ← {"event":"price","symbol":"AAPL","price":191.2,"timestamp":1709904600,"day_volume":…}
    → {"action":"heartbeat"}       every 10 s, or the server closes the connection
    ← {"event":"heartbeat","status":"ok"}

A price event is a last price, not a trade: it has no size, the session volume comes in
`day_volume` when the exchange reports one.
"""

from __future__ import annotations

from typing import Any

from yarl import URL

from tickwire.ingestor.streams.base import (Control, Event, JunkFrame, Rejected, Trade, Wire,
                                            positive, size_of, symbol_of)

HEARTBEAT_SECONDS = 10.0


class TwelveDataAdapter:
    name = "twelvedata"

    def __init__(self, ws_url: str, api_key: str, cap: int,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS):
        self._url = ws_url
        self.key = api_key
        self.cap = cap
        self.heartbeat_seconds = heartbeat_seconds

    def url(self) -> str:
        return str(URL(self._url).update_query(apikey=self.key))

    async def handshake(self, wire: Wire) -> None:
        return None  # the key rides in the URL

    def subscribe(self, symbols: list[str]) -> list[Any]:
        return [{"action": "subscribe", "params": {"symbols": ",".join(symbols)}}]

    def unsubscribe(self, symbols: list[str]) -> list[Any]:
        return [{"action": "unsubscribe", "params": {"symbols": ",".join(symbols)}}]

    def heartbeat(self) -> Any:
        return {"action": "heartbeat"}

    def decode(self, message: Any) -> list[Event]:
        if not isinstance(message, dict):
            raise JunkFrame("a Twelve Data message is an object")
        event = message.get("event")
        if event == "price":
            timestamp = message.get("timestamp")
            if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
                raise JunkFrame("price without a numeric 'timestamp'")
            volume = message.get("day_volume")
            return [Trade(symbol_of(message.get("symbol")), positive(message.get("price"), "price"),
                          0, float(timestamp),
                          size_of(volume, "day_volume") if volume is not None else None)]
        if event == "subscribe-status":
            fails = message.get("fails") or []
            if not isinstance(fails, list):
                raise JunkFrame("'fails' is not a list")
            failed = tuple(symbol_of(f.get("symbol") if isinstance(f, dict) else f) for f in fails)
            if message.get("status") == "error" and not failed:
                return [Rejected(str(message.get("messages") or "subscribe failed")[:200])]
            return [Rejected("symbol refused by the provider", "fails", failed)] if failed else [
                Control()]
        if isinstance(event, str):
            return [Control()]  # heartbeat and unsubscribe-status answers
        raise JunkFrame("message without an 'event'")
