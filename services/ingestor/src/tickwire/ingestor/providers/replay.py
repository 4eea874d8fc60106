"""Replays a CSV of historical quotes, looping, at a chosen speed.

The file has a header and one row per quote snapshot; lines starting with `#` are comments:

    timestamp,symbol,price,open,high,low,volume,previous_close
    2024-03-08T14:30:00Z,AAPL,170.89,170.89,170.89,170.89,401932,170.73

`timestamp` is ISO-8601 or Unix seconds. The replay clock starts at the file's first
timestamp when the provider is built and runs `speed` times faster than real time; a fetch
answers, per symbol, the newest row at or before the replay clock. After the last row it
starts over (the file's span plus one row spacing, so the last row gets its turn too).
Quotes carry the wall-clock time of the fetch, since that is when they are news.
A symbol the file does not have is an UNKNOWN_SYMBOL failure: the next provider serves it.
"""

from __future__ import annotations

import bisect
import csv
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tickwire.core.models import InvalidQuote, StockQuote, iso_from_unix, normalise_symbol, unix_from_iso
from tickwire.ingestor.providers.base import FailureKind, FetchResult, ProviderError

COLUMNS = ("timestamp", "symbol", "price", "open", "high", "low", "volume", "previous_close")


def sample_path() -> Path:
    """The small sample file shipped inside the package."""
    return Path(str(resources.files("tickwire.ingestor.providers") / "data" / "sample_quotes.csv"))


@dataclass(frozen=True, slots=True)
class _Row:
    at: float  # seconds since the file's first timestamp
    price: float
    open: float
    high: float
    low: float
    volume: int
    previous_close: float


class ReplayData:
    """A parsed replay file: per symbol, rows ordered by time."""

    def __init__(self, series: dict[str, list[_Row]], span: float):
        self.series = series
        self.span = span
        self._times = {symbol: [row.at for row in rows] for symbol, rows in series.items()}

    @classmethod
    def load(cls, path: Path) -> ReplayData:
        """Raises ValueError naming the file and line of the first bad row."""
        try:
            text = path.read_text()
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1)
                 if line.strip() and not line.lstrip().startswith("#")]
        if not lines:
            raise ValueError(f"{path} has no header")
        header = next(csv.reader([lines[0][1]]))
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{path}: header lacks {', '.join(missing)}")
        raw: list[tuple[float, str, _Row]] = []
        for number, line in lines[1:]:
            try:
                cells = next(csv.reader([line]))
                if len(cells) != len(header):
                    raise ValueError(f"{len(cells)} fields, the header has {len(header)}")
                raw.append(_parse_row(dict(zip(header, cells))))
            except (ValueError, KeyError, TypeError, InvalidQuote) as exc:
                raise ValueError(f"{path}:{number}: {exc}") from None
        if not raw:
            raise ValueError(f"{path} has no rows")
        start = min(at for at, _, _ in raw)
        stamps = sorted({at for at, _, _ in raw})
        spacing = min((b - a for a, b in zip(stamps, stamps[1:])), default=1.0)
        series: dict[str, list[_Row]] = {}
        for at, symbol, row in sorted(raw, key=lambda item: item[0]):
            series.setdefault(symbol, []).append(_shift(row, at - start))
        return cls(series, stamps[-1] - start + spacing)

    def row_at(self, symbol: str, position: float) -> _Row | None:
        """The newest row of `symbol` at or before `position`; before its first row, the
        last one (still showing from the previous loop)."""
        rows = self.series.get(symbol)
        if not rows:
            return None
        index = bisect.bisect_right(self._times[symbol], position) - 1
        return rows[index]


def _parse_row(values: dict[str, str]) -> tuple[float, str, _Row]:
    stamp = values["timestamp"].strip()
    try:
        at = float(stamp)
    except ValueError:
        at = unix_from_iso(stamp)
    symbol = normalise_symbol(values["symbol"])
    if symbol is None:
        raise ValueError(f"invalid symbol {values['symbol']!r}")
    row = _Row(0.0, float(values["price"]), float(values["open"]), float(values["high"]),
               float(values["low"]), int(values["volume"]), float(values["previous_close"]))
    _quote(symbol, row, "")  # validates: positive, finite
    return at, symbol, row


def _shift(row: _Row, at: float) -> _Row:
    return _Row(at, row.price, row.open, row.high, row.low, row.volume, row.previous_close)


def _quote(symbol: str, row: _Row, timestamp: str) -> StockQuote:
    change = round(row.price - row.previous_close, 4)
    percent = round(change / row.previous_close * 100, 4) if row.previous_close else 0.0
    return StockQuote(symbol=symbol, price=row.price, change=change, change_percent=percent,
                      volume=row.volume, high=row.high, low=row.low, open=row.open,
                      previous_close=row.previous_close, timestamp=timestamp, source="replay")


class ReplayProvider:
    name = "replay"
    max_batch = 1000

    def __init__(self, data: ReplayData, speed: float = 1.0,
                 clock: Callable[[], float] = time.time):
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self._data = data
        self._speed = speed
        self._clock = clock
        self._started = clock()

    def position(self) -> float:
        """Seconds into the file the replay clock stands at now."""
        return ((self._clock() - self._started) * self._speed) % self._data.span

    async def fetch(self, symbols: list[str]) -> FetchResult:
        now = self._clock()
        position = self.position()
        result = FetchResult()
        for symbol in symbols:
            row = self._data.row_at(symbol, position)
            if row is None:
                result.failures[symbol] = ProviderError(f"{symbol} is not in the replay file",
                                                        FailureKind.UNKNOWN_SYMBOL)
            else:
                result.quotes[symbol] = _quote(symbol, row, iso_from_unix(now))
        return result

    async def close(self) -> None:
        return None
