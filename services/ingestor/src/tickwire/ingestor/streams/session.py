"""The trading-session aggregate a streamed symbol's quote is built from.

A stream brings last prices (and trade sizes); a StockQuote also needs the session's
previous close, open, high, low and volume. The aggregate is seeded once from a REST quote,
then moved by every trade. It is saved in Redis (`market-data:session:{SYMBOL}`), so the
replica that takes a symbol over continues it. A trade of a new session (US equities: the
session opens at 09:30 New York time) closes the old one: its last price becomes the
previous close and open, high and low start again. Every streamed symbol's aggregate is
saved once a second, so saves go over a connection of the store's own (`scripts`).
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import redis.asyncio as aioredis

from tickwire.core import names
from tickwire.core.models import StockQuote, iso_from_unix
from tickwire.core.redisconn import script_batches
from tickwire.ingestor.lifetimes import KeyLifetimes
from tickwire.ingestor.streams.base import Trade
from tickwire.ingestor.streams.holidays import closed_all_day, early_close, nth_weekday

SESSION_TTL_SECONDS = 5 * 24 * 3600  # a long weekend and a holiday
OPEN = timedelta(hours=9, minutes=30)
CLOSE = timedelta(hours=16)
EARLY_CLOSE = timedelta(hours=13)
SUNDAY = 6


def new_york(at: float) -> datetime:
    """Wall-clock time in New York (US Eastern, with its daylight-saving rule) at Unix `at`;
    written out so the service needs no time-zone database."""
    utc = datetime.fromtimestamp(at, tz=timezone.utc).replace(tzinfo=None)
    # DST: from 2:00 local on March's second Sunday (07:00 UTC) to 2:00 local on
    # November's first Sunday (06:00 UTC).
    midnight = datetime.min.time()
    start = datetime.combine(nth_weekday(utc.year, 3, SUNDAY, 2), midnight) + timedelta(hours=7)
    end = datetime.combine(nth_weekday(utc.year, 11, SUNDAY, 1), midnight) + timedelta(hours=6)
    return utc - timedelta(hours=4 if start <= utc < end else 5)


_session_cache: tuple[float, float, str] = (0.0, 0.0, "")  # [start, end) → session


def _open_at(day: date) -> float:
    """Unix time of the 09:30 New York open on `day` (09:30 is never inside a DST switch)."""
    for offset in (4, 5):
        at = datetime.combine(day, datetime.min.time(), timezone.utc).timestamp() + (
            9.5 + offset) * 3600
        if new_york(at).hour == 9:
            return at
    raise AssertionError(f"no 09:30 on {day}")


def session_of(at: float) -> str:
    """The session a moment belongs to: the New York date of the last 09:30 open before it.
    Every trade asks, so the current session's span is remembered."""
    global _session_cache
    start, end, session = _session_cache
    if start <= at < end:
        return session
    day = (new_york(at) - OPEN).date()
    _session_cache = (_open_at(day), _open_at(day + timedelta(days=1)), day.isoformat())
    return _session_cache[2]


def market_open(at: float) -> bool:
    """Regular US trading hours: 09:30–16:00 New York on trading days, to 13:00 on the
    early-close days, never on weekends and full holidays (`holidays`)."""
    local = new_york(at)
    day = local.date()
    if closed_all_day(day):
        return False
    since_midnight = local - local.replace(hour=0, minute=0, second=0, microsecond=0)
    return OPEN <= since_midnight < (EARLY_CLOSE if early_close(day) else CLOSE)


@dataclass(slots=True)
class Session:
    session: str
    previous_close: float
    open: float
    high: float
    low: float
    price: float
    volume: int
    at: float  # Unix seconds of the trade behind `price`

    @classmethod
    def seed(cls, quote: StockQuote, at: float) -> Session:
        return cls(session_of(at), quote.previous_close, quote.open, quote.high, quote.low,
                   quote.price, quote.volume, at)

    def apply(self, trade: Trade) -> None:
        """Move the aggregate by one trade; a trade older than the newest only adds volume
        and widens the range, never turns the price back."""
        session = session_of(trade.at)
        if session > self.session:
            self.session, self.previous_close = session, self.price
            self.open = self.high = self.low = trade.price
            self.volume, self.price, self.at = 0, trade.price, trade.at
        self.high, self.low = max(self.high, trade.price), min(self.low, trade.price)
        if trade.day_volume is not None:
            self.volume = max(self.volume, trade.day_volume)
        else:
            self.volume += trade.size
        if trade.at >= self.at:
            self.price, self.at = trade.price, trade.at

    def quote(self, symbol: str, source: str) -> StockQuote:
        change = self.price - self.previous_close
        return StockQuote(
            symbol=symbol, price=self.price, change=round(change, 4),
            change_percent=round(change / self.previous_close * 100, 4) if self.previous_close
            else 0.0, volume=self.volume, high=self.high, low=self.low, open=self.open,
            previous_close=self.previous_close, timestamp=iso_from_unix(self.at), source=source)

    def to_hash(self) -> dict[str, str]:
        return {"session": self.session, "previousClose": repr(self.previous_close),
                "open": repr(self.open), "high": repr(self.high), "low": repr(self.low),
                "price": repr(self.price), "volume": str(self.volume), "at": repr(self.at)}

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes]) -> Session | None:
        """None for a missing or damaged hash (the caller seeds a new one)."""
        try:
            text = {k.decode(): v.decode() for k, v in raw.items()}
            return cls(text["session"], float(text["previousClose"]), float(text["open"]),
                       float(text["high"]), float(text["low"]), float(text["price"]),
                       int(text["volume"]), float(text["at"]))
        except (KeyError, ValueError, UnicodeDecodeError):
            return None


# Write a session and give it a TTL (the long one, or the inactive one for a symbol this
# replica no longer owns), unless the key carries a shorter one: the symbol went inactive
# (`lifetimes`) and a save must not keep it alive.
# KEYS: the session hash; ARGV: the TTL to give, the inactive TTL, then field/value pairs.
_SAVE = """
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 or ttl > tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
"""


class SessionStore:
    """Guarantees: a symbol's saved session expires with its other keys once it is
    inactive, whichever of the save and the inactivity came first (saves are ordered with
    `lifetimes`' writes, and a symbol not owned at save time gets the inactive TTL)."""

    def __init__(self, redis: aioredis.Redis, lifetimes: KeyLifetimes):
        """`lifetimes`: the writer of the symbols' key lifetimes these saves are ordered with."""
        self._redis = redis
        self._lifetimes = lifetimes
        self._save = script_batches(redis, _SAVE)

    async def load(self, symbols: list[str]) -> dict[str, Session | None]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for symbol in symbols:
                pipe.hgetall(names.session_key(symbol))
            replies = await pipe.execute()
        return {s: Session.from_hash(raw) if raw else None for s, raw in zip(symbols, replies)}

    async def save(self, sessions: dict[str, Session],
                   owned: Callable[[], Container[str]]) -> None:
        """`owned`: the symbols this replica owns, asked once the save may start."""
        inactive = self._lifetimes.ttl
        async with self._lifetimes.writing:
            mine = owned()
            calls = [([names.session_key(symbol)],
                      [SESSION_TTL_SECONDS if symbol in mine else inactive, inactive,
                       *(item for pair in session.to_hash().items() for item in pair)])
                     for symbol, session in sessions.items()]
            replies = await self._save.run(calls)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply

    async def aclose(self) -> None:
        """Close the store's own Redis connection (the client's pool is the caller's)."""
        await self._save.aclose()
