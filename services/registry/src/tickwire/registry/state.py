"""The registry's state in Redis (DESIGN.md §4) and every read and write of it.

Model. Each edge event carries the edge's own clock `ts`, strictly increasing per edge.
For every (edge, symbol) the newest event that speaks about the pair decides whether the
edge holds the symbol: a subscribe/unsubscribe speaks about its symbol, a heartbeat about
every symbol (those in its set are held, all others are not), an `edge_down` says "none".
Events up to an `edge_down` (or up to the last event of an expired edge) are closed
history: late copies are ignored, while a newer incarnation of the same edge id counts.

Guarantees:
- Each event is one atomic Lua script (`lua.py`) over keys of one hash-tag slot, so
  concurrent replicas never interleave inside a transition, on one Redis or a Cluster.
- `apply_many` sends a run of subscribes/unsubscribes as one pipeline: one round trip
  for the run, each event still its own script, applied in order.
- Idempotent and order-independent: applying an event twice, replaying the topic, or
  reading the partitions (symbol-keyed subscribes, edge-keyed heartbeats) in any
  interleaving yields the same sets.
- A symbol is in the active set exactly while at least one edge holds it. Each change of
  activity is appended to the outbox in the same script, and only a change is:
  `Announcer` publishes the outbox in order.
- An edge is removed by `expire` only when its newest event is older than a cutoff the
  caller derives from how far every partition has been read (see `expiry`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tickwire.core import names
from tickwire.core.events import SubscriptionEvent
from tickwire.core.redisconn import run_scripts
from tickwire.registry import lua


@dataclass(frozen=True, slots=True)
class Outcome:
    changed: int   # symbols whose activity changed
    stale: bool    # the event was older than what it speaks about and changed nothing


class Pending(NamedTuple):
    """An event to apply, with what `apply` takes beside it."""
    event: SubscriptionEvent
    fallback_ts: int
    traceparent: str = ""


@dataclass(frozen=True, slots=True)
class EdgeInfo:
    edge_id: str
    lease_age_ms: int | None  # time since the edge's newest event; None if never heard
    symbols: int


RETRIES = 20  # reads of an edge's set racing another replica's writes to it


class RegistryState:
    def __init__(self, redis: aioredis.Redis, tombstone_seconds: int):
        self._redis = redis
        self._tombstone_s = tombstone_seconds
        self._apply = redis.register_script(lua.APPLY)
        self._expire = redis.register_script(lua.EXPIRE)

    async def apply(self, event: SubscriptionEvent, fallback_ts: int,
                    traceparent: str = "") -> Outcome:
        """Apply one event. `fallback_ts` (the Kafka record's timestamp) stands in for a
        missing `ts`, so a replay orders such an event exactly as the first pass did.
        `traceparent` (W3C, may be empty) goes into the outbox entries this event causes,
        so their announcements continue the event's trace."""
        symbols = [event.symbol] if event.symbol else list(event.symbols)
        whole_set = event.symbol is None  # a heartbeat or edge_down speaks about every symbol
        changed, stale = await self._run(
            self._apply, event.edge_id, symbols, whole_set,
            [traceparent], [str(event.type), event.ts or fallback_ts, *symbols])
        return Outcome(int(changed), bool(stale))

    async def apply_many(self, events: list[Pending]) -> list[Outcome]:
        """Apply events in order, as `apply` would one by one, with one round trip per
        run of subscribes/unsubscribes: each is still its own atomic script, pipelined
        behind the one before. An event that speaks about the edge's whole set (a
        heartbeat, an edge_down) reads that set first, so it goes alone."""
        outcomes: list[Outcome] = []
        run: list[Pending] = []
        for pending in events:
            if pending.event.symbol is not None:
                run.append(pending)
                continue
            outcomes += await self._apply_run(run)
            run = []
            outcomes.append(await self.apply(*pending))
        outcomes += await self._apply_run(run)
        return outcomes

    async def _apply_run(self, run: list[Pending]) -> list[Outcome]:
        if not run:
            return []
        calls = []
        for event, fallback_ts, traceparent in run:
            calls.append(([*self._keys(event.edge_id), names.symbol_edges_key(event.symbol)],
                          [event.edge_id, now_ms(), self._tombstone_s, traceparent, event.symbol,
                           str(event.type), event.ts or fallback_ts, event.symbol]))
        replies = await run_scripts(self._redis, self._apply, calls)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply  # the caller retries the run: re-applying an event changes nothing
        return [Outcome(int(changed), bool(stale)) for changed, stale in replies]

    async def expire(self, edge_id: str, cutoff_ms: int) -> tuple[bool, int]:
        """Remove `edge_id` if its newest event is older than `cutoff_ms` (edge clock);
        returns whether it was removed and how many symbols became inactive."""
        removed, changed = await self._run(self._expire, edge_id, [], True, [""], [cutoff_ms])
        return bool(removed), int(changed)

    async def _run(self, script, edge_id: str, symbols: list[str], whole_set: bool,
                   trace: list[str], own_args: list[object]) -> list[int]:
        """Run a transition script with every symbol set it may touch declared: `symbols`,
        plus the edge's current ones when it speaks about the whole set (re-read when a
        concurrent transition changed them in between)."""
        for _ in range(RETRIES):
            declared = list(dict.fromkeys(symbols))
            if whole_set:
                held = await self._redis.smembers(names.edge_symbols_key(edge_id))
                named = set(declared)  # a set: heartbeats declare thousands of symbols
                declared.extend(s for s in sorted(m.decode() for m in held) if s not in named)
            reply = await script(
                keys=[*self._keys(edge_id), *(names.symbol_edges_key(s) for s in declared)],
                args=[edge_id, now_ms(), self._tombstone_s, *trace, *declared, *own_args])
            if int(reply[0]) != -1:
                return reply
        # Transient like any Redis failure: the caller's retry applies the event again.
        raise RedisError(f"edge {edge_id}: its symbol set kept changing during {RETRIES} reads")

    def _keys(self, edge_id: str) -> list[str]:
        return [names.edge_symbols_key(edge_id), names.edge_stamps_key(edge_id),
                names.edge_lease_key(edge_id), names.edge_down_key(edge_id), names.EDGES_KEY,
                names.ACTIVE_SYMBOLS_KEY, names.REGISTRY_OUTBOX_KEY]

    # ---- how far the subscriptions topic has been read (written by each replica) ----

    async def record_progress(self, caught_up_at: dict[int, int]) -> None:
        await self._redis.hset(names.REGISTRY_PROGRESS_KEY,
                               mapping={str(p): t for p, t in caught_up_at.items()})

    async def progress(self) -> dict[int, int]:
        raw = await self._redis.hgetall(names.REGISTRY_PROGRESS_KEY)
        return {int(p): int(t) for p, t in raw.items()}

    # ---- reads ----

    async def last_seen(self) -> dict[str, int | None]:
        """Every known edge and the edge-clock time of its newest event."""
        edges = sorted(m.decode() for m in await self._redis.smembers(names.EDGES_KEY))
        async with self._redis.pipeline(transaction=False) as pipe:
            for edge in edges:
                pipe.hget(names.edge_lease_key(edge), "seen")
            seen = await pipe.execute()
        return {edge: int(s) if s else None for edge, s in zip(edges, seen)}

    async def active_symbols(self) -> list[tuple[str, int]]:
        """Active symbols, sorted, with how many edges hold each."""
        symbols = sorted(m.decode() for m in await self._redis.smembers(names.ACTIVE_SYMBOLS_KEY))
        async with self._redis.pipeline(transaction=False) as pipe:
            for symbol in symbols:
                pipe.scard(names.symbol_edges_key(symbol))
            counts = await pipe.execute()
        return list(zip(symbols, counts))

    async def symbol_edges(self, symbol: str) -> list[str]:
        members = await self._redis.smembers(names.symbol_edges_key(symbol))
        return sorted(m.decode() for m in members)

    async def edges(self) -> list[EdgeInfo]:
        seen = await self.last_seen()
        async with self._redis.pipeline(transaction=False) as pipe:
            for edge in seen:
                pipe.scard(names.edge_symbols_key(edge))
            counts = await pipe.execute()
        now = now_ms()
        return [EdgeInfo(edge, None if stamp is None else max(0, now - stamp), count)
                for (edge, stamp), count in zip(seen.items(), counts)]

    async def sizes(self) -> tuple[int, int, int]:
        """(active symbols, known edges, outbox entries): for the gauges."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.scard(names.ACTIVE_SYMBOLS_KEY)
            pipe.scard(names.EDGES_KEY)
            pipe.llen(names.REGISTRY_OUTBOX_KEY)
            active, edges, outbox = await pipe.execute()
        return active, edges, outbox


def now_ms() -> int:
    return int(time.time() * 1000)
