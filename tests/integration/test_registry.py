"""The registry with real edges, Redis and Kafka: reference counts, deactivation, expiry.

Also home of what the other test_registry_*.py files share: `Model` (what the registry's
state must be after a set of edge events), `EventFeed` (sends edge events to Kafka the way
edges do), and readers of the Redis state and of `market-data.active-symbols`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import aiohttp
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tickwire.core import names
from tickwire.core.redisconn import redis_client
from tickwire.core.eventlog import event_producer
from tickwire.core.events import ActiveSymbolEvent, SubscriptionEvent, SubscriptionEventType

from integration.wsclient import eventually, get_json, subscribed

SUBSCRIBE = SubscriptionEventType.SUBSCRIBE
UNSUBSCRIBE = SubscriptionEventType.UNSUBSCRIBE
HEARTBEAT = SubscriptionEventType.EDGE_HEARTBEAT
EDGE_DOWN = SubscriptionEventType.EDGE_DOWN

# For tests whose edges are simulated and send no heartbeats: nothing expires meanwhile.
LONG_LEASE = "600"


# ---- the registry's state ------------------------------------------------------------


@dataclass(frozen=True)
class RegistrySets:
    """The registry's Redis sets (DESIGN.md §4); Redis drops empty sets, so do these."""

    edges: frozenset[str]
    active: frozenset[str]
    holdings: dict[str, frozenset[str]]      # edge -> symbols
    symbol_edges: dict[str, frozenset[str]]  # symbol -> edges

    @classmethod
    def of(cls, edges: Iterable[str], holdings: dict[str, set[str]]) -> RegistrySets:
        held = {e: frozenset(s) for e, s in holdings.items() if s}
        by_symbol: dict[str, set[str]] = defaultdict(set)
        for edge, symbols in held.items():
            for symbol in symbols:
                by_symbol[symbol].add(edge)
        return cls(frozenset(edges), frozenset(by_symbol),
                   held, {s: frozenset(e) for s, e in by_symbol.items()})


async def read_sets(redis_url: str, mode: str = "standalone") -> RegistrySets:
    client = redis_client(redis_url, mode, decode_responses=True)
    try:
        holdings = {}
        edge_prefix, edge_suffix = names.edge_symbols_key("*").split("*")
        async for key in client.scan_iter(match=names.edge_symbols_key("*"), count=1000):
            holdings[key[len(edge_prefix):-len(edge_suffix)]] = frozenset(await client.smembers(key))
        symbol_edges = {}
        prefix, suffix = names.SYMBOL_EDGES_PREFIX, names.SYMBOL_EDGES_SUFFIX
        async for key in client.scan_iter(match=f"{prefix}*{suffix}", count=1000):
            symbol_edges[key[len(prefix):-len(suffix)]] = frozenset(await client.smembers(key))
        return RegistrySets(frozenset(await client.smembers(names.EDGES_KEY)),
                            frozenset(await client.smembers(names.ACTIVE_SYMBOLS_KEY)),
                            holdings, symbol_edges)
    finally:
        await client.aclose()


# ---- what the state must be ----------------------------------------------------------


@dataclass
class Model:
    """The registry's contract as a reference: for each (edge, symbol) the newest event
    speaking about the pair decides (a heartbeat speaks about every symbol, an
    `edge_down` says "none" and closes the edge's history up to it)."""

    events: list[SubscriptionEvent] = field(default_factory=list)

    def expected(self) -> RegistrySets:
        by_edge: dict[str, list[SubscriptionEvent]] = defaultdict(list)
        for event in self.events:
            by_edge[event.edge_id].append(event)
        edges, holdings = set(), {}
        for edge, events in by_edge.items():
            closed = max((e.ts for e in events if e.type == EDGE_DOWN), default=-1)
            live = [e for e in events if e.ts > closed]
            if not live:
                continue
            edges.add(edge)
            heartbeat = max((e for e in live if e.type == HEARTBEAT), key=lambda e: e.ts,
                            default=None)
            newest: dict[str, SubscriptionEvent] = {}
            for event in live:
                if event.symbol and event.ts >= newest.get(event.symbol, event).ts:
                    newest[event.symbol] = event
            held = set(heartbeat.symbols) if heartbeat else set()
            for symbol, event in newest.items():
                if heartbeat is None or event.ts > heartbeat.ts:
                    (held.add if event.type == SUBSCRIBE else held.discard)(symbol)
            holdings[edge] = held
        return RegistrySets.of(edges, holdings)

    def activity_changes(self) -> dict[str, list[bool]]:
        """Per symbol, the activity changes the events cause when applied in the order
        given: exact for a stream of subscribes and unsubscribes only, whose events of one
        symbol share a partition and are therefore read in that order."""
        assert all(e.type in (SUBSCRIBE, UNSUBSCRIBE) for e in self.events)
        holders: dict[str, set[str]] = defaultdict(set)
        changes: dict[str, list[bool]] = defaultdict(list)
        for event in self.events:
            before = bool(holders[event.symbol])
            (holders[event.symbol].add if event.type == SUBSCRIBE
             else holders[event.symbol].discard)(event.edge_id)
            if bool(holders[event.symbol]) != before:
                changes[event.symbol].append(not before)
        return dict(changes)


def toggles(seed: int, edges: int, symbols: int, count: int) -> Iterator[tuple]:
    """Subscribes and unsubscribes as edges send them: each flips one (edge, symbol)."""
    rng = random.Random(seed)
    held: set[tuple[str, str]] = set()
    for _ in range(count):
        pair = (f"sim-{rng.randrange(edges)}", f"SYM{rng.randrange(symbols)}")
        kind = UNSUBSCRIBE if pair in held else SUBSCRIBE
        (held.discard if pair in held else held.add)(pair)
        yield kind, pair[0], pair[1], ()


def history(seed: int, edges: int, symbols: int, count: int) -> Iterator[tuple]:
    """A rough life of several edges: subscribes and unsubscribes, heartbeats, events
    lost on the way (healed by a later heartbeat), late re-deliveries of old events,
    shutdowns and restarts under the same edge id."""
    rng = random.Random(seed)
    held: dict[str, set[str]] = defaultdict(set)
    for _ in range(count):
        edge, symbol = f"sim-{rng.randrange(edges)}", f"SYM{rng.randrange(symbols)}"
        roll = rng.random()
        if roll < 0.06:
            held[edge] ^= {symbol}                   # the event never reached Kafka
        elif roll < 0.22:
            yield HEARTBEAT, edge, None, tuple(sorted(held[edge]))
        elif roll < 0.25:
            held[edge].clear()
            yield EDGE_DOWN, edge, None, ()
        elif roll < 0.30:
            yield "resend", edge, None, ()           # some earlier event of it, again
        else:
            kind = UNSUBSCRIBE if symbol in held[edge] else SUBSCRIBE
            held[edge] ^= {symbol}
            yield kind, edge, symbol, ()


class EventFeed:
    """Sends edge events to `market-data.subscriptions` keyed as edges key them, with a
    clock that never repeats, and records them in `model`."""

    def __init__(self, bootstrap: str, seed: int = 0):
        self._producer = event_producer(bootstrap, "test-event-feed")
        self._deliveries: list[asyncio.Future] = []
        self._last_ts = 0
        self._rng = random.Random(seed)
        self.model = Model()

    async def __aenter__(self) -> EventFeed:
        await self._producer.start()
        return self

    async def __aexit__(self, *_) -> None:
        await self.flush()
        await self._producer.stop()

    @property
    def sent(self) -> int:
        return len(self.model.events)

    def _ts(self) -> int:
        self._last_ts = max(int(time.time() * 1000), self._last_ts + 1)
        return self._last_ts

    async def send(self, kind, edge: str, symbol: str | None = None,
                   symbols: tuple[str, ...] = ()) -> None:
        if kind == "resend":
            earlier = [e for e in self.model.events if e.edge_id == edge]
            if not earlier:
                return
            event = self._rng.choice(earlier)
        else:
            event = SubscriptionEvent(kind, edge, symbol=symbol, symbols=symbols, ts=self._ts())
        self._deliveries.append(await self._producer.send(
            names.SUBSCRIPTIONS_TOPIC, key=event.key(), value=event.encode()))
        self.model.events.append(event)

    async def play(self, steps: Iterable[tuple], per_second: float) -> None:
        """Send `steps` at about `per_second`, in bursts of ten."""
        for n, step in enumerate(steps, 1):
            await self.send(*step)
            if n % 10 == 0:
                await asyncio.sleep(10 / per_second)
        await self.flush()

    async def flush(self) -> None:
        await asyncio.gather(*self._deliveries)
        self._deliveries.clear()


# ---- Kafka -----------------------------------------------------------------------------


async def partitions_of(bootstrap: str, topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        return [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    finally:
        await admin.close()


async def read_topic(bootstrap: str, topic: str) -> list:
    """Every record of `topic` now, each partition in offset order."""
    partitions = await partitions_of(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records = []
        deadline = time.monotonic() + 30
        while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
            assert time.monotonic() < deadline, "topic not read to its end in 30 s"
            for tp, batch in (await consumer.getmany(timeout_ms=500)).items():
                records += [r for r in batch if r.offset < end[tp]]
        return records
    finally:
        await consumer.stop()


async def announcements(bootstrap: str) -> dict[str, list[bool]]:
    """Per symbol, the `active` values published on market-data.active-symbols, in order
    (a symbol's announcements share one partition)."""
    published: dict[str, list[bool]] = defaultdict(list)
    for record in await read_topic(bootstrap, names.ACTIVE_SYMBOLS_TOPIC):
        event = ActiveSymbolEvent.decode(record.value)
        assert record.key == event.symbol.encode()
        published[event.symbol].append(event.active)
    return dict(published)


def only_changes(published: dict[str, list[bool]]) -> dict[str, list[bool]]:
    """`published` without immediate repeats (what at-least-once may add across a crash)."""
    return {s: [a for i, a in enumerate(states) if i == 0 or states[i - 1] != a]
            for s, states in published.items()}


async def everything_applied(bootstrap: str, group: str) -> bool:
    """`group` has applied and committed every event on market-data.subscriptions."""
    partitions = await partitions_of(bootstrap, names.SUBSCRIPTIONS_TOPIC)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        end = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
        await admin.close()
    return all(end[tp] == 0 or (tp in committed and committed[tp].offset >= end[tp])
               for tp in partitions)


async def settled(bootstrap: str, redis_url: str, group: str = names.REGISTRY_GROUP) -> None:
    """Wait until every event is applied and committed and every change is published."""
    await eventually(lambda: everything_applied(bootstrap, group), timeout=60, interval=0.5)

    async def outbox_empty() -> bool:
        client = aioredis.Redis.from_url(redis_url)
        try:
            return await client.llen(names.REGISTRY_OUTBOX_KEY) == 0
        finally:
            await client.aclose()

    await eventually(outbox_empty, timeout=60)


# ---- HTTP ------------------------------------------------------------------------------


async def active_symbols(registry_url: str) -> dict[str, int]:
    status, body, _ = await get_json(f"{registry_url}/api/symbols")
    assert status == 200, body
    return {entry["symbol"]: entry["edges"] for entry in body["symbols"]}


async def edges(registry_url: str) -> dict[str, dict]:
    status, body, _ = await get_json(f"{registry_url}/api/edges")
    assert status == 200, body
    return {entry["edgeId"]: entry for entry in body["edges"]}


async def metrics(url: str) -> dict[str, float]:
    """Samples of /metrics by their full name with labels, e.g. `x_total{type="a"}`."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/metrics") as response:
            text = await response.text()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def heard_from_after(registry_url: str, edge: str, moment_ms: int) -> bool:
    """The registry has applied an event `edge` sent after `moment_ms` (a heartbeat, say)."""
    now = int(time.time() * 1000)
    entry = (await edges(registry_url)).get(edge)
    return entry is not None and now - entry["leaseAgeMs"] > moment_ms


# ---- tests -----------------------------------------------------------------------------


async def test_one_edge_counts_once_and_the_last_leaver_deactivates(stack, kafka_bootstrap):
    registry = stack.registry()
    edge1, edge2 = stack.edge("edge-1"), stack.edge("edge-2")
    on_edge1 = [await subscribed(edge1.ws_url, ["AAPL", "MSFT"]) for _ in range(5)]
    on_edge2 = [await subscribed(edge2.ws_url, ["aapl"]) for _ in range(3)]
    try:
        await eventually(lambda: _equals(active_symbols(registry.url), {"AAPL": 2, "MSFT": 1}))

        status, body, _ = await get_json(f"{registry.url}/api/symbols/aapl")
        assert status == 200 and body == {"symbol": "AAPL", "active": True,
                                          "edges": ["edge-1", "edge-2"]}
        listed = await edges(registry.url)
        assert set(listed) == {"edge-1", "edge-2"}
        assert {e: (v["symbols"], set(v)) for e, v in listed.items()} == {
            "edge-1": (2, {"edgeId", "leaseAgeMs", "symbols"}),
            "edge-2": (1, {"edgeId", "leaseAgeMs", "symbols"})}
        assert all(isinstance(v["leaseAgeMs"], int) and v["leaseAgeMs"] >= 0
                   for v in listed.values())

        # Four of edge-1's five clients leave: edge-1 still holds both symbols, once.
        left_at = int(time.time() * 1000)
        for client in on_edge1[:4]:
            await client.close()
        await eventually(lambda: heard_from_after(registry.url, "edge-1", left_at + 1000))
        assert await active_symbols(registry.url) == {"AAPL": 2, "MSFT": 1}

        # Its last client disconnects: MSFT has no edge left, AAPL only edge-2.
        await on_edge1[4].close()
        await eventually(lambda: _equals(active_symbols(registry.url), {"AAPL": 1}))
        status, body, _ = await get_json(f"{registry.url}/api/symbols/MSFT")
        assert status == 404 and body["error"]["code"] == "NOT_FOUND"

        # edge-2's clients unsubscribe one by one; only the last one deactivates AAPL.
        for client in on_edge2[:2]:
            await client.send({"action": "unsubscribe", "symbols": ["AAPL"]})
            await client.until(lambda m: m["type"] == "unsubscribed")
        left_at = int(time.time() * 1000)
        await eventually(lambda: heard_from_after(registry.url, "edge-2", left_at + 1000))
        assert await active_symbols(registry.url) == {"AAPL": 1}
        await on_edge2[2].send({"action": "unsubscribe", "symbols": ["AAPL"]})
        await eventually(lambda: _equals(active_symbols(registry.url), {}))
    finally:
        for client in on_edge1 + on_edge2:
            await client.close()

    # Each symbol was announced exactly when its activity changed, and only then.
    await eventually(lambda: _equals(announcements(kafka_bootstrap),
                                     {"AAPL": [True, False], "MSFT": [True, False]}))

    samples = await metrics(registry.url)
    assert samples['tickwire_registry_events_total{type="subscribe"}'] >= 3
    assert samples['tickwire_registry_announcements_total'] == 4
    lags = [v for k, v in samples.items() if k.startswith("tickwire_registry_consumer_lag{")]
    assert lags and all(v >= 0 for v in lags)


async def test_symbol_endpoint_rejects_bad_names_and_unknown_symbols(stack):
    registry = stack.registry()
    for bad in ["bad!", "A" * 21, "%20"]:
        status, body, _ = await get_json(f"{registry.url}/api/symbols/{bad}")
        assert status == 400 and body["error"]["code"] == "INVALID_SYMBOL", (bad, body)
    status, body, _ = await get_json(f"{registry.url}/api/symbols/NOPE")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    assert await edges(registry.url) == {}
    assert await active_symbols(registry.url) == {}


async def test_a_killed_edge_expires_with_its_lease_and_may_come_back(stack, kafka_bootstrap):
    registry = stack.registry()                              # lease: 6 s
    edge1, edge2 = stack.edge("edge-1"), stack.edge("edge-2")
    clients = [await subscribed(edge1.ws_url, ["AAPL", "TSLA"]),
               await subscribed(edge2.ws_url, ["AAPL"])]
    try:
        await eventually(lambda: _equals(active_symbols(registry.url), {"AAPL": 2, "TSLA": 1}))

        edge1.process.kill()                                 # no edge_down: a crash
        # Its lease has not run out yet: a silent edge may just be slow.
        assert await active_symbols(registry.url) == {"AAPL": 2, "TSLA": 1}
        await eventually(lambda: _equals(active_symbols(registry.url), {"AAPL": 1}),
                         timeout=6 + 15)
        assert set(await edges(registry.url)) == {"edge-2"}

        # The same edge id, restarted, is a new incarnation and counts again.
        edge1 = stack.edge("edge-1")
        clients.append(await subscribed(edge1.ws_url, ["TSLA"]))
        await eventually(lambda: _equals(active_symbols(registry.url), {"AAPL": 1, "TSLA": 1}))

        # An edge that shuts down says so (edge_down) and is removed at once; restarted
        # under the same id, it counts again.
        await asyncio.to_thread(edge2.process.stop)
        await eventually(lambda: _equals(active_symbols(registry.url), {"TSLA": 1}))
        assert set(await edges(registry.url)) == {"edge-1"}
        edge2 = stack.edge("edge-2")
        clients.append(await subscribed(edge2.ws_url, ["AAPL"]))
        await eventually(lambda: _equals(active_symbols(registry.url), {"AAPL": 1, "TSLA": 1}))
    finally:
        for client in clients:
            await client.close()
    await eventually(lambda: _equals(active_symbols(registry.url), {}))

    # Only the crash was an expiry; edge-2 left by edge_down.
    assert (await metrics(registry.url))["tickwire_registry_edges_expired_total"] == 1
    await eventually(lambda: _equals(announcements(kafka_bootstrap),
                                     {"AAPL": [True, False, True, False],
                                      "TSLA": [True, False, True, False]}))


async def _equals(value, expected) -> bool:
    return await value == expected
