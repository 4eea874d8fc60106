"""The hub and the node's wiring on an in-memory bus: membership, upstream interest, the
delayed release, batching, the failed-subscribe rollback; liveness, control and drain."""

from __future__ import annotations

import asyncio

import pytest

from tickwire.core import names
from tickwire.core.codecs import encode_tick
from tickwire.core.models import Tick
from tickwire.edge import liveness
from tickwire.edge.control import parse_control
from tickwire.edge.drain import drain_sessions
from tickwire.edge.hub import Hub
from tickwire.edge.session import Session

from edge_fakes import RecordingSink, settle, updates


class MemoryBus:
    """The TickBus port in memory: SUBSCRIBE waits on `gate`, fails while `refuse`."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.gaps = 0
        self.channels: set[str] = set()
        self.commands: list[tuple[str, list[str]]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.refuse = False
        self.handlers: dict[str, object] = {}
        self.ticks = None

    def on(self, channel, handler) -> None:
        self.handlers[channel] = handler

    def on_ticks(self, handler) -> None:
        self.ticks = handler

    async def subscribe(self, channels) -> None:
        channels = list(channels)
        self.commands.append(("subscribe", channels))
        await self.gate.wait()
        if self.refuse:
            raise ConnectionRefusedError("redis: NOPERM")
        self.channels.update(channels)

    async def unsubscribe(self, channels) -> None:
        channels = list(channels)
        self.commands.append(("unsubscribe", channels))
        self.channels.difference_update(channels)

    async def latest(self, symbols):
        return [None for _ in symbols]

    async def publish(self, tick: Tick) -> None:
        channel = names.tick_channel(tick.symbol)
        if channel in self.channels:
            self.ticks(channel, encode_tick(tick))


class Heard:
    """Stands in for Announcements: what would reach Kafka."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def subscribed(self, symbols) -> None:
        self.events += [("subscribe", s) for s in symbols]

    def unsubscribed(self, symbols) -> None:
        self.events += [("unsubscribe", s) for s in symbols]


@pytest.fixture
def bus():
    return MemoryBus()


@pytest.fixture
def heard():
    return Heard()


def hub_on(bus: MemoryBus, heard: Heard, delay: float = 0.05) -> Hub:
    hub = Hub(bus, heard, release_delay=delay)
    bus.on_ticks(hub.dispatch_tick)
    return hub


def tick(symbol: str, seq: int) -> Tick:
    return Tick(symbol, {"symbol": symbol, "price": float(seq)}, seq, "e", 0)


async def until(condition, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def test_a_subscribed_session_gets_the_ticks_of_its_symbols(bus, heard):
    hub = hub_on(bus, heard)
    session = Session("a", RecordingSink())
    assert await hub.subscribe(session, ["A"]) == []
    await bus.publish(tick("A", 1))
    await bus.publish(tick("B", 1))
    await settle()
    assert updates(session.sink.frames) == [("A", 1)]
    assert heard.events == [("subscribe", "A")]
    await session.stop()


async def test_churn_reaches_upstream_only_as_its_net_transition(bus, heard):
    hub = hub_on(bus, heard, delay=0.2)
    session = Session("a", RecordingSink())
    for _ in range(20):
        await hub.subscribe(session, ["CHURN"])
        hub.unsubscribe(session, ["CHURN"])
    await hub.subscribe(session, ["CHURN"])
    hub.leave(session)
    await until(lambda: len(bus.commands) == 2)
    assert heard.events == [("subscribe", "CHURN"), ("unsubscribe", "CHURN")]
    assert [kind for kind, _ in bus.commands] == ["subscribe", "unsubscribe"]
    assert hub.symbols() == []


async def test_a_slow_subscribe_holds_up_nobody_else_and_batches_what_comes_meanwhile(bus, heard):
    hub = hub_on(bus, heard)
    held = Session("held", RecordingSink())
    await hub.subscribe(held, ["HELD"])
    bus.gate.clear()  # Redis is slow to confirm
    first = asyncio.create_task(hub.subscribe(Session("s1", RecordingSink()), ["X1"]))
    await until(lambda: len(bus.commands) == 2)
    later = [asyncio.create_task(hub.subscribe(Session(f"s{n}", RecordingSink()), [f"Y{n}"]))
             for n in range(5)]
    # Meanwhile a symbol already held subscribes and unsubscribes at once.
    other = Session("other", RecordingSink())
    assert await asyncio.wait_for(hub.subscribe(other, ["HELD"]), 1) == []
    hub.unsubscribe(other, ["HELD"])
    bus.gate.set()
    assert await asyncio.gather(first, *later) == [[]] * 6
    assert bus.commands[2] == ("subscribe", [names.tick_channel(f"Y{n}") for n in range(5)])
    assert len(bus.commands) == 3


async def test_a_failed_subscribe_changes_nothing_and_can_be_retried(bus, heard):
    hub = hub_on(bus, heard)
    session = Session("a", RecordingSink())
    bus.refuse = True
    assert await hub.subscribe(session, ["NOPE", "ALSO"]) == ["NOPE", "ALSO"]
    assert session.symbols == {} and hub.symbols() == [] and heard.events == []
    bus.refuse = False
    assert await hub.subscribe(session, ["NOPE"]) == []
    assert list(session.symbols) == ["NOPE"] and hub.symbols() == ["NOPE"]
    assert heard.events == [("subscribe", "NOPE")]
    await session.stop()


async def test_a_session_gone_while_its_subscribe_was_in_flight_leaves_nothing_held(bus, heard):
    hub = hub_on(bus, heard)
    session = Session("a", RecordingSink())
    bus.gate.clear()
    pending = asyncio.create_task(hub.subscribe(session, ["GONE"]))
    await until(lambda: bus.commands)
    await session.stop()  # the client disconnected
    hub.leave(session)
    bus.gate.set()
    await pending
    await until(lambda: ("unsubscribe", "GONE") in heard.events)
    assert hub.symbols() == []


async def test_polled_interest_holds_a_symbol_without_a_session(bus, heard):
    hub = hub_on(bus, heard)
    assert await hub.hold(["POLL"]) == []
    session = Session("a", RecordingSink())
    await hub.subscribe(session, ["POLL", "WATCHED"])
    hub.leave(session)
    # WATCHED, left at the same moment, is released by the delay; POLL is still held.
    await until(lambda: ("unsubscribe", "WATCHED") in heard.events)
    assert hub.symbols() == ["POLL"] and hub.subscriber_counts() == {"POLL": 1}
    hub.let_go(["POLL"])
    await until(lambda: hub.symbols() == [])


def test_liveness_is_judged_on_the_time_given():
    session = Session("a", RecordingSink())
    start = session.last_heard
    assert liveness.verdict(session, start + 1, 30, 10) is None
    assert liveness.verdict(session, start + 30, 30, 10) == liveness.PING
    assert liveness.verdict(session, start + 62, 30, 10) == (1001, "missed heartbeats")
    session.blocked_since = start
    assert liveness.verdict(session, start + 11, 30, 10) == (1013, "slow consumer")


def test_control_messages_are_parsed_for_this_edge_only():
    import msgpack

    assert parse_control(msgpack.packb({"type": "pause", "edge": "e1"}), "e1") == "pause"
    assert parse_control(b'{"type":"drain","edge":"*"}', "e1") == "drain"
    assert parse_control(b'{"type":"drain","edge":"e2"}', "e1") is None
    assert parse_control(b'{"type":"explode","edge":"*"}', "e1") is None
    assert parse_control(b"junk", "e1") is None
    assert parse_control(msgpack.packb([1, 2]), "e1") is None
    # A worker answers to its own id and to its pod's.
    assert parse_control(b'{"type":"drain","edge":"pod"}', "pod.w1", "pod") == "drain"
    assert parse_control(b'{"type":"drain","edge":"pod.w0"}', "pod.w1", "pod") is None


async def test_a_drain_closes_sessions_concurrently_within_its_window():
    sessions = [Session(f"s{n}", RecordingSink()) for n in range(13)]
    for session in sessions:
        session.sink.gate.clear()  # none of them reads
    closing = asyncio.Event()
    closed: list[Session] = []

    async def close(session: Session, code: int, reason: str) -> None:
        await session.stop()
        closed.append(session)
        if len(closed) == len(sessions):
            closing.set()
        await asyncio.sleep(3600)  # a peer that never takes the close frame

    drain = asyncio.create_task(drain_sessions(sessions, 0.2, close))
    # Each flush waits 1 s on its unreadable client; one after another, that is 13 s.
    await asyncio.wait_for(closing.wait(), 5)
    drain.cancel()
    for session in sessions:
        await session.stop()


async def test_a_polled_symbol_is_held_for_the_interest_window_then_released(bus, heard):
    from tickwire.edge.rest import PollInterest

    now = [100.0]
    hub = hub_on(bus, heard)
    polls = PollInterest(hub, ttl=90.0, max_symbols=2, clock=lambda: now[0])
    await polls.touch(["P1", "P2", "P3"])  # past max_symbols: P3 is served, not held
    assert sorted(hub.symbols()) == ["P1", "P2"]
    now[0] += 60
    await polls.touch(["P1"])  # read again: its window starts afresh
    now[0] += 31
    polls.expire()
    await until(lambda: hub.symbols() == ["P1"])
    now[0] += 60
    polls.expire()
    await until(lambda: hub.symbols() == [])
    assert heard.events == [("subscribe", "P1"), ("subscribe", "P2"),
                            ("unsubscribe", "P2"), ("unsubscribe", "P1")]


async def test_a_subscribe_that_fails_unexpectedly_releases_its_waiters(bus, heard):
    hub = hub_on(bus, heard)

    async def broken(channels) -> None:
        raise RuntimeError("a bug in the bus")

    bus.subscribe = broken
    assert await asyncio.wait_for(hub.subscribe(Session("a", RecordingSink()), ["BUG"]), 5) \
        == ["BUG"]
    assert hub.symbols() == [] and heard.events == []


def cold_hub(bus: MemoryBus, heard: Heard, wait: float = 30.0, max_waiting: int = 100):
    from tickwire.edge.coldread import ColdReads

    cold = ColdReads(wait, max_waiting)
    hub = Hub(bus, heard, release_delay=0.05, cold_reads=cold)
    bus.on_ticks(hub.dispatch_tick)
    return hub, cold


class CacheReads:
    """Stands in for the bus's cache read: empty, counting the reads."""

    def __init__(self) -> None:
        self.reads: list[list[str]] = []

    async def __call__(self, symbols: list[str]) -> list[Tick | None]:
        self.reads.append(list(symbols))
        return [None for _ in symbols]


async def test_a_cold_read_is_woken_by_the_first_tick_not_by_reading_the_cache_again(bus, heard):
    hub, cold = cold_hub(bus, heard)
    session = Session("a", RecordingSink())
    await hub.subscribe(session, ["WATCHED"])
    await hub.hold(["COLD"])
    latest = CacheReads()
    waiting = asyncio.create_task(cold.first_quotes(["COLD", "WATCHED"], latest))
    await until(lambda: set(cold.awaited) == {"COLD", "WATCHED"})
    await bus.publish(tick("COLD", 1))
    await bus.publish(tick("WATCHED", 4))
    found = await asyncio.wait_for(waiting, 10)
    assert {s: t.seq for s, t in found.items()} == {"COLD": 1, "WATCHED": 4}
    assert latest.reads == [["COLD", "WATCHED"]]  # once, before waiting; never again
    await settle()
    assert updates(session.sink.frames) == [("WATCHED", 4)]  # the session got its tick too
    assert cold.awaited == {}
    await session.stop()


async def test_cold_reads_are_bounded_and_answer_without_a_quote_when_none_comes(bus, heard):
    hub, cold = cold_hub(bus, heard, wait=0.2, max_waiting=2)
    await hub.hold(["A", "B", "C"])
    latest = CacheReads()
    first = asyncio.create_task(cold.first_quotes(["A", "B", "C"], latest))
    await until(lambda: len(cold.awaited) == 2)
    assert await cold.first_quotes(["C"], latest) == {}  # no room: answered at once
    assert latest.reads == [["A", "B"]]  # only what it waits for is read again
    assert await asyncio.wait_for(first, 10) == {}
    assert cold.awaited == {}
    second = asyncio.create_task(cold.first_quotes(["C"], latest))  # room again
    await until(lambda: "C" in cold.awaited)
    await bus.publish(tick("C", 2))
    assert {s: t.seq for s, t in (await asyncio.wait_for(second, 10)).items()} == {"C": 2}


async def test_readers_of_one_symbol_share_its_first_tick(bus, heard):
    hub, cold = cold_hub(bus, heard)
    await hub.hold(["S"])
    readers = [asyncio.create_task(cold.first_quotes(["S"], CacheReads())) for _ in range(3)]
    await until(lambda: "S" in cold.awaited)
    await settle()
    assert len(cold.awaited) == 1
    await bus.publish(tick("S", 9))
    for reader in readers:
        assert (await asyncio.wait_for(reader, 10))["S"].seq == 9
    assert cold.awaited == {}
