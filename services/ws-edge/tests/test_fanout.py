"""The fan-out scheduler: small fan-outs inline, large ones over several event-loop
passes, dispatch order kept, traced ticks' spans ended with their recipients. A
stepping clock stands in for time, so 'over budget' is decided by the test."""

from __future__ import annotations

import asyncio

from tickwire.core.models import Tick
from tickwire.edge.fanout import SLICE, FanOut
from tickwire.edge.frames import TickFrames

from edge_fakes import LoopPasses


def tick(symbol: str, seq: int) -> Tick:
    return Tick(symbol, {"symbol": symbol, "price": float(seq)}, seq, "e", 0)


def offer(fan_out: FanOut, update: Tick, watchers, span=None) -> None:
    fan_out.offer(update, TickFrames(update), watchers, span)


class Watcher:
    """Records the ticks offered to it (and the loop pass of each), as Session.offer
    would take them; one that has left takes nothing."""

    def __init__(self, passes: LoopPasses | None = None):
        self.got: list[tuple[str, int]] = []
        self.passes: list[int] = []
        self.left = False
        self._loop_passes = passes

    def offer(self, update: Tick, frames: TickFrames) -> bool:
        if self.left:
            return False
        self.got.append((update.symbol, update.seq))
        if self._loop_passes is not None:
            self.passes.append(self._loop_passes.count)
        return True


class SteppingClock:
    """Each reading is `step` seconds after the last."""

    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class Span:
    def __init__(self):
        self.attributes: dict = {}
        self.ended = 0

    def set_attribute(self, key, value) -> None:
        self.attributes[key] = value

    def end(self) -> None:
        self.ended += 1


async def drained(fan_out: FanOut, passes: int = 1000) -> None:
    for _ in range(passes):
        if not fan_out.backlog:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{fan_out.backlog} fan-outs still unfinished")


async def test_a_small_fan_out_is_offered_at_once():
    fan_out = FanOut(clock=SteppingClock(1.0), budget=0.5)  # always over budget
    watchers = [Watcher() for _ in range(SLICE)]
    offer(fan_out, tick("A", 1), watchers)
    assert all(w.got == [("A", 1)] for w in watchers) and fan_out.backlog == 0


async def test_a_large_fan_out_goes_on_over_later_passes_and_later_ticks_wait_behind_it():
    async with LoopPasses() as passes:
        fan_out = FanOut(clock=SteppingClock(1.0), budget=0.5,  # one slice per pass
                         catch_up_after=1e9)
        hot = [Watcher(passes) for _ in range(SLICE * 4)]
        offer(fan_out, tick("HOT", 1), hot)
        # The first slice now, the rest later.
        assert sum(1 for w in hot if w.got) == SLICE and fan_out.backlog == 1
        # Later ticks wait behind it, even small fan-outs, of its symbol or another.
        offer(fan_out, tick("HOT", 2), hot[:3])
        offer(fan_out, tick("COLD", 1), hot[:1])
        assert hot[0].got == [("HOT", 1)] and fan_out.backlog == 3
        hot[-1].left = True  # a session that leaves meanwhile is skipped
        await drained(fan_out)
    assert hot[0].got == [("HOT", 1), ("HOT", 2), ("COLD", 1)]
    assert all(w.got == [("HOT", 1), ("HOT", 2)] for w in hot[1:3])
    assert all(w.got == [("HOT", 1)] for w in hot[3:-1]) and hot[-1].got == []
    # Other callbacks (the pass counter) ran between the slices.
    assert hot[-2].passes[0] > hot[0].passes[0]


async def test_a_backlog_that_waited_too_long_is_offered_in_one_pass():
    async with LoopPasses() as passes:
        # One slice per pass, until the oldest fan-out has waited 10 clock readings.
        fan_out = FanOut(clock=SteppingClock(1.0), budget=0.5, catch_up_after=10)
        watchers = [Watcher(passes) for _ in range(SLICE * 40)]
        offer(fan_out, tick("A", 1), watchers)
        offer(fan_out, tick("A", 2), watchers)
        await drained(fan_out)
    first = {w.passes[0] for w in watchers}
    assert 2 < len(first) < 40  # sliced at first, then the rest at once...
    assert watchers[-1].passes[0] == watchers[-1].passes[1]  # ...both ticks in that pass
    assert all(w.got == [("A", 1), ("A", 2)] for w in watchers)


async def test_under_budget_a_large_fan_out_finishes_in_the_pass_it_started():
    fan_out = FanOut(clock=SteppingClock(0.0), budget=0.5)  # never over budget
    watchers = [Watcher() for _ in range(SLICE * 3)]
    offer(fan_out, tick("A", 1), watchers)
    offer(fan_out, tick("A", 2), watchers)
    assert all(w.got == [("A", 1), ("A", 2)] for w in watchers) and fan_out.backlog == 0


async def test_a_traced_ticks_span_ends_with_its_fan_out_counting_who_took_it():
    fan_out = FanOut(clock=SteppingClock(1.0), budget=0.5, catch_up_after=1e9)
    watchers = [Watcher() for _ in range(SLICE * 2 + 5)]
    watchers[7].left = True
    span = Span()
    offer(fan_out, tick("A", 1), watchers, span)
    assert span.ended == 0  # still going
    await drained(fan_out)
    assert span.ended == 1 and span.attributes["tickwire.recipients"] == len(watchers) - 1
    # A traced tick with one watcher has its span ended at once.
    small = Span()
    offer(fan_out, tick("B", 1), [Watcher()], small)
    assert small.ended == 1 and small.attributes["tickwire.recipients"] == 1
