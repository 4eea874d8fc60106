"""The replay provider: the shipped sample, looping, speed, bad files."""

from __future__ import annotations

import pytest

from tickwire.ingestor.providers.base import FailureKind
from tickwire.ingestor.providers.replay import ReplayData, ReplayProvider, sample_path

CSV = """# comment lines are skipped
timestamp,symbol,price,open,high,low,volume,previous_close
2024-03-08T14:30:00Z,AAA,10.00,10.00,10.00,10.00,100,9.50
2024-03-08T14:30:00Z,BBB,20.00,20.00,20.00,20.00,100,20.00
2024-03-08T14:30:10Z,AAA,10.50,10.00,10.50,10.00,150,9.50
1709908220,AAA,11.00,10.00,11.00,10.00,180,9.50
"""


class Clock:
    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def data(tmp_path) -> ReplayData:
    path = tmp_path / "quotes.csv"
    path.write_text(CSV)
    return ReplayData.load(path)


async def prices(provider: ReplayProvider, symbol: str = "AAA") -> float:
    return (await provider.fetch([symbol])).quotes[symbol].price


async def test_plays_rows_in_time_and_loops(data):
    clock = Clock()
    replay = ReplayProvider(data, speed=1.0, clock=clock)
    assert data.span == 30.0  # 0, 10, 20 s plus one spacing
    seen = []
    for offset in (0, 9.9, 10, 20, 29.9, 30, 41):
        clock.now = 5_000 + offset
        seen.append(await prices(replay))
    assert seen == [10.0, 10.0, 10.5, 11.0, 11.0, 10.0, 10.5]


async def test_speed_factor(data):
    clock = Clock()
    replay = ReplayProvider(data, speed=10.0, clock=clock)
    clock.now += 1.0  # ten replay seconds
    assert await prices(replay) == 10.5


async def test_quote_fields_and_unknown_symbol(data):
    clock = Clock()
    result = await ReplayProvider(data, clock=clock).fetch(["AAA", "ZZZ"])
    quote = result.quotes["AAA"]
    assert (quote.change, quote.change_percent, quote.source) == (0.5, 5.2632, "replay")
    assert result.failures["ZZZ"].kind is FailureKind.UNKNOWN_SYMBOL


def test_shipped_sample_loads():
    data = ReplayData.load(sample_path())
    assert {"AAPL", "MSFT"} <= set(data.series)
    assert all(len(rows) > 10 for rows in data.series.values())


@pytest.mark.parametrize("text, message", [
    ("", "no header"),
    ("timestamp,symbol,price\n", "header lacks open, high, low, volume, previous_close"),
    ("timestamp,symbol,price,open,high,low,volume,previous_close\n", "no rows"),
    (CSV + "2024-03-08T14:31:00Z,AAA,0,1,1,1,1,1\n", ":7: "),
    (CSV + "2024-03-08T14:31:00Z,AAA,1,1\n", ":7: 4 fields"),
    (CSV + "yesterday,AAA,1,1,1,1,1,1\n", ":7: "),
    (CSV + "2024-03-08T14:31:00Z,bad symbol!,1,1,1,1,1,1\n", "invalid symbol"),
])
def test_bad_files_name_the_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        ReplayData.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        ReplayData.load(tmp_path / "nope.csv")
