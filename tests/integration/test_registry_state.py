"""The registry's Redis transitions (tickwire.registry.state) against a real Redis.

Kafka keeps order only within a partition: subscribes are keyed by symbol, heartbeats and
edge_down by edge, and a rebalance or restart re-delivers what was not committed. These
tests apply event histories in many such orders, with such re-deliveries, and check that
the sets always come out as the model says and that the outbox holds exactly the changes.
"""

from __future__ import annotations

import random
import zlib
from collections import defaultdict

import orjson
import pytest
import redis.asyncio as aioredis

from tickwire.core import names
from tickwire.core.events import SubscriptionEvent
from tickwire.registry.state import RegistryState

from integration.test_registry import (EDGE_DOWN, HEARTBEAT, SUBSCRIBE, UNSUBSCRIBE, Model,
                                       RegistrySets, history, read_sets)

PARTITIONS = 6


def build(steps, seed: int) -> list[SubscriptionEvent]:
    """The events `history` describes, stamped by a clock that never repeats."""
    rng = random.Random(seed)
    events: list[SubscriptionEvent] = []
    for ts, (kind, edge, symbol, symbols) in enumerate(steps, start=1_000):
        if kind == "resend":
            earlier = [e for e in events if e.edge_id == edge]
            if earlier:
                events.append(rng.choice(earlier))
            continue
        events.append(SubscriptionEvent(kind, edge, symbol=symbol, symbols=symbols, ts=ts))
    return events


def delivery_order(events: list[SubscriptionEvent], seed: int) -> list[SubscriptionEvent]:
    """One order a group of consumers may apply `events` in: each partition in order, the
    partitions interleaved at random, and now and then a partition re-read from a few
    records back (an uncommitted batch after a rebalance)."""
    rng = random.Random(seed)
    partitions: dict[int, list[SubscriptionEvent]] = defaultdict(list)
    for event in events:
        partitions[zlib.crc32(event.key()) % PARTITIONS].append(event)
    cursor = dict.fromkeys(partitions, 0)
    order = []
    while any(cursor[p] < len(partitions[p]) for p in partitions):
        p = rng.choice([p for p in partitions if cursor[p] < len(partitions[p])])
        order.append(partitions[p][cursor[p]])
        cursor[p] += 1
        if rng.random() < 0.03:
            cursor[p] = max(0, cursor[p] - rng.randint(1, 10))
    return order


@pytest.fixture
async def redis(redis_url: str):
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def state(redis: aioredis.Redis) -> RegistryState:
    return RegistryState(redis, tombstone_seconds=3600)


async def outbox(redis_url: str) -> dict[str, list[bool]]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        entries = [orjson.loads(e) for e in await client.lrange(names.REGISTRY_OUTBOX_KEY, 0, -1)]
    finally:
        await client.aclose()
    changes: dict[str, list[bool]] = defaultdict(list)
    for entry in entries:
        assert entry["v"] == 1 and isinstance(entry["ts"], int)
        assert entry["subscribers"] == (1 if entry["active"] else 0)
        changes[entry["symbol"]].append(entry["active"])
    return dict(changes)


def assert_only_changes(changes: dict[str, list[bool]], active: frozenset[str]) -> None:
    """Each symbol's announcements alternate, starting with active, ending in its state."""
    for symbol, states in changes.items():
        assert states[0] is True, (symbol, states)
        assert all(a != b for a, b in zip(states, states[1:])), (symbol, states)
        assert states[-1] == (symbol in active), (symbol, states)
    assert active <= set(changes)


@pytest.mark.parametrize("seed", range(12))
async def test_any_delivery_order_gives_the_model_state(state, redis, redis_url, seed):
    events = build(history(seed, edges=4, symbols=6, count=160), seed)
    expected = Model(events).expected()
    for order_seed in range(3):
        await redis.flushdb()
        for event in delivery_order(events, seed * 100 + order_seed):
            await state.apply(event, fallback_ts=0)
        assert await read_sets(redis_url) == expected, f"order {order_seed}"
        assert_only_changes(await outbox(redis_url), expected.active)


async def test_replaying_everything_again_changes_nothing(state, redis_url):
    events = build(history(7, edges=4, symbols=6, count=200), 7)
    for event in events:
        await state.apply(event, fallback_ts=0)
    first, announced = await read_sets(redis_url), await outbox(redis_url)
    for event in delivery_order(events, 1):
        outcome = await state.apply(event, fallback_ts=0)
        assert outcome.changed == 0
    assert await read_sets(redis_url) == first == Model(events).expected()
    assert await outbox(redis_url) == announced


async def test_a_late_subscribe_cannot_undo_a_newer_heartbeat(state, redis_url):
    await state.apply(SubscriptionEvent(HEARTBEAT, "e1", symbols=(), ts=200), 0)
    outcome = await state.apply(SubscriptionEvent(SUBSCRIBE, "e1", symbol="AAPL", ts=100), 0)
    assert outcome.stale and outcome.changed == 0
    assert await read_sets(redis_url) == RegistrySets.of({"e1"}, {})
    assert await outbox(redis_url) == {}


async def test_events_up_to_an_edge_down_are_history_but_a_new_incarnation_counts(
        state, redis_url):
    await state.apply(SubscriptionEvent(SUBSCRIBE, "e1", symbol="AAPL", ts=100), 0)
    await state.apply(SubscriptionEvent(SUBSCRIBE, "e1", symbol="MSFT", ts=300), 0)   # restarted
    await state.apply(SubscriptionEvent(HEARTBEAT, "e1", symbols=("MSFT", "IBM"), ts=310), 0)
    await state.apply(SubscriptionEvent(EDGE_DOWN, "e1", ts=200), 0)                 # read late
    assert await read_sets(redis_url) == RegistrySets.of({"e1"}, {"e1": {"MSFT", "IBM"}})
    outcome = await state.apply(SubscriptionEvent(SUBSCRIBE, "e1", symbol="TSLA", ts=150), 0)
    assert outcome.stale
    await state.apply(SubscriptionEvent(EDGE_DOWN, "e1", ts=400), 0)
    assert await read_sets(redis_url) == RegistrySets.of(set(), {})
    assert await outbox(redis_url) == {"AAPL": [True, False], "MSFT": [True, False],
                                       "IBM": [True, False]}


async def test_expire_removes_only_an_edge_silent_since_the_cutoff(state, redis_url):
    await state.apply(SubscriptionEvent(SUBSCRIBE, "e1", symbol="AAPL", ts=1_000), 0)
    await state.apply(SubscriptionEvent(SUBSCRIBE, "e2", symbol="AAPL", ts=5_000), 0)
    assert await state.expire("e1", cutoff_ms=1_000) == (False, 0)
    assert await state.expire("e1", cutoff_ms=1_001) == (True, 0)
    assert await state.expire("e2", cutoff_ms=5_001) == (True, 1)
    assert await read_sets(redis_url) == RegistrySets.of(set(), {})
    # A late copy of the expired edge's last event does not bring it back.
    assert (await state.apply(SubscriptionEvent(SUBSCRIBE, "e2", symbol="AAPL", ts=5_000), 0)).stale
    assert await read_sets(redis_url) == RegistrySets.of(set(), {})


async def test_a_missing_ts_is_taken_from_the_record(state, redis_url):
    await state.apply(SubscriptionEvent(SUBSCRIBE, "e1", symbol="AAPL", ts=0), fallback_ts=500)
    assert (await state.apply(SubscriptionEvent(UNSUBSCRIBE, "e1", symbol="AAPL", ts=0),
                              fallback_ts=400)).stale
    assert await read_sets(redis_url) == RegistrySets.of({"e1"}, {"e1": {"AAPL"}})
