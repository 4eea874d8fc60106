"""SnapshotReader: the snapshot reads of many subscribes share one MGET; LatestTicks: a
held symbol's snapshot comes from the ticks the edge saw, and a read is kept only when
nothing newer can have happened meanwhile (pure logic; a recording stand-in for the bus).
tests/integration/test_edge_snapshots.py drives the same through a real edge and Redis."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from tickwire.core.models import Tick
from tickwire.edge.snapshots import LatestTicks, SnapshotReader

pytestmark = pytest.mark.asyncio


def tick(symbol: str, seq: int = 1) -> Tick:
    return Tick(symbol=symbol, data={"symbol": symbol, "price": 1.0}, seq=seq, epoch="e",
                published_at="2026-12-02T00:00:00Z")


class Bus:
    """Answers `latest` from a dict after a loop pass, recording every read."""

    def __init__(self, cached: dict[str, Tick], fail: int = 0):
        self.cached = cached
        self.reads: list[list[str]] = []
        self.fail = fail  # how many reads fail first
        self.gaps = 0  # times messages may have gone missing
        self.connected = asyncio.Event()
        self.connected.set()

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


async def test_a_held_symbol_is_read_once_then_follows_its_ticks():
    bus = Bus({"A": tick("A", 1)})
    latest = LatestTicks(bus)
    assert [t.seq for t in await latest.latest(["A"])] == [1]
    latest.saw(tick("A", 2))
    assert [t.seq for t in await latest.latest(["A"])] == [2]
    assert bus.reads == [["A"]]


async def test_nothing_cached_is_remembered_until_the_first_tick():
    bus = Bus({})
    latest = LatestTicks(bus)
    assert await latest.latest(["A"]) == [None]
    assert await latest.latest(["A"]) == [None]
    latest.saw(tick("A", 1))
    assert [t.seq for t in await latest.latest(["A"])] == [1]
    assert bus.reads == [["A"]]


async def test_a_tick_seen_during_the_read_wins_over_it():
    bus = Bus({"A": tick("A", 1)})
    latest = LatestTicks(bus)
    answer = asyncio.ensure_future(latest.latest(["A"]))
    while not bus.reads:  # until the read is in flight
        await asyncio.sleep(0)
    latest.saw(tick("A", 2))
    assert [t.seq for t in await answer] == [2]
    assert [t.seq for t in await latest.latest(["A"])] == [2]


async def test_a_read_overlapping_a_release_is_not_kept():
    bus = Bus({"A": tick("A", 1)})
    latest = LatestTicks(bus)
    answer = asyncio.ensure_future(latest.latest(["A"]))
    await asyncio.sleep(0)
    latest.forget("B")  # released (and maybe held again) meanwhile: ticks may be unseen
    assert [t.seq for t in await answer] == [1]
    await latest.latest(["A"])
    assert bus.reads == [["A"], ["A"]]


async def test_a_gap_in_delivery_drops_what_was_seen():
    bus = Bus({"A": tick("A", 1)})
    latest = LatestTicks(bus)
    latest.saw(tick("A", 5))
    bus.gaps += 1  # ticks published meanwhile never arrived: Redis knows better
    assert [t.seq for t in await latest.latest(["A"])] == [1]
    answer = asyncio.ensure_future(latest.latest(["B"]))
    await asyncio.sleep(0)
    bus.gaps += 1  # during a read: its answer is not kept either
    await answer
    await latest.latest(["B"])
    assert bus.reads == [["A"], ["B"], ["B"]]


async def test_a_failed_read_leaves_nothing_behind():
    bus = Bus({"A": tick("A", 1)}, fail=1)
    latest = LatestTicks(bus)
    with pytest.raises(RedisConnectionError):
        await latest.latest(["A"])
    assert [t.seq for t in await latest.latest(["A"])] == [1]


async def test_a_read_made_while_disconnected_is_not_kept():
    bus = Bus({"A": tick("A", 1)})
    bus.connected.clear()  # ticks published now reach nobody here
    latest = LatestTicks(bus)
    assert [t.seq for t in await latest.latest(["A"])] == [1]
    bus.connected.set()
    await latest.latest(["A"])
    assert bus.reads == [["A"], ["A"]]


async def test_an_older_tick_does_not_replace_a_newer_one():
    latest = LatestTicks(Bus({}))
    latest.saw(tick("A", 5))
    latest.saw(tick("A", 3))  # a replay of the cache after a resubscribe, say
    assert [t.seq for t in await latest.latest(["A"])] == [5]
    restarted = Tick(symbol="A", data={"symbol": "A", "price": 2.0}, seq=1, epoch="f",
                     published_at="2026-12-02T00:00:00Z")
    latest.saw(restarted)  # a new epoch: the sequence restarted, and it is newer
    assert [(t.epoch, t.seq) for t in await latest.latest(["A"])] == [("f", 1)]
