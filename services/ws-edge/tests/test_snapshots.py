"""SnapshotReader: the snapshot reads of many subscribes share one MGET (pure logic; a
recording stand-in for the bus)."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from tickwire.core.models import Tick
from tickwire.edge.snapshots import SnapshotReader

pytestmark = pytest.mark.asyncio


def tick(symbol: str) -> Tick:
    return Tick(symbol=symbol, data={"symbol": symbol, "price": 1.0}, seq=1, epoch="e",
                published_at="2026-12-02T00:00:00Z")


class Bus:
    """Answers `latest` from a dict after a loop pass, recording every read."""

    def __init__(self, cached: dict[str, Tick], fail: int = 0):
        self.cached = cached
        self.reads: list[list[str]] = []
        self.fail = fail  # how many reads fail first

    async def latest(self, symbols: list[str]) -> list[Tick | None]:
        self.reads.append(list(symbols))
        await asyncio.sleep(0)
        if self.fail:
            self.fail -= 1
            raise RedisConnectionError("Too many connections")
        return [self.cached.get(s) for s in symbols]


async def test_a_storm_of_subscribes_costs_one_read_per_batch():
    bus = Bus({s: tick(s) for s in ("A", "B", "C")})
    reader = SnapshotReader(bus)
    asked = [["A", "B"], ["B", "C"], ["C", "X"]] * 100
    answers = await asyncio.gather(*(reader.latest(symbols) for symbols in asked))
    assert len(bus.reads) == 1 and sorted(bus.reads[0]) == ["A", "B", "C", "X"]
    for symbols, ticks in zip(asked, answers):
        assert [t.symbol if t else None for t in ticks] == \
            [s if s != "X" else None for s in symbols]


async def test_callers_arriving_during_a_read_share_the_next_one():
    bus = Bus({"A": tick("A"), "B": tick("B")})
    reader = SnapshotReader(bus)
    first = asyncio.ensure_future(reader.latest(["A"]))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the first read is in flight now
    later = [asyncio.ensure_future(reader.latest(["B"])) for _ in range(50)]
    assert [t.symbol for t in await first] == ["A"]
    for answer in await asyncio.gather(*later):
        assert [t.symbol for t in answer] == ["B"]
    assert bus.reads == [["A"], ["B"]]


async def test_a_failed_read_fails_its_batch_and_the_next_one_reads_again():
    bus = Bus({"A": tick("A")}, fail=1)
    reader = SnapshotReader(bus)
    results = await asyncio.gather(*(reader.latest(["A"]) for _ in range(5)),
                                   return_exceptions=True)
    assert all(isinstance(r, RedisConnectionError) for r in results)
    assert [t.symbol for t in await reader.latest(["A"])] == ["A"]
    assert len(bus.reads) == 2


async def test_nothing_asked_reads_nothing():
    bus = Bus({})
    assert await SnapshotReader(bus).latest([]) == []
    assert bus.reads == []
