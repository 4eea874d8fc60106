"""The registry's state in Redis: every transition is one atomic Lua script.

Guarantees:
- Idempotent: applying an event twice, or replaying the whole topic, yields the same sets.
- Ordered per (edge, symbol) by the edge's `ts`: an event older than the newest one
  already applied for that pair is stale and ignored, so reordering across partitions
  (subscribe keyed by symbol, heartbeats keyed by edge) cannot resurrect a symbol.
- A symbol is in the active set exactly while at least one edge holds it. Every change
  of activity appends the new state to an outbox list in the same script; `Announcer`
  publishes the outbox to Kafka in order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from tickwire.core import names
from tickwire.core.events import SubscriptionEvent, SubscriptionEventType

# KEYS: edge_symbols, stamps, lease, tombstone, edges, active, outbox
# ARGV: kind, edge, ts, lease_ms, now_ms, tombstone_s, sym_prefix, sym_suffix, symbols...
_APPLY = """
local edge_symbols, stamps, lease, tombstone, edges, active, outbox =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local kind, edge = ARGV[1], ARGV[2]
local ts, lease_ms, now = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local tombstone_s, prefix, suffix = tonumber(ARGV[6]), ARGV[7], ARGV[8]
local changed = 0

local function announce(symbol, is_active, count)
  redis.call('RPUSH', outbox, cjson.encode({v=1, symbol=symbol, active=is_active,
                                            subscribers=count, ts=now}))
  changed = changed + 1
end

local function add(symbol)
  local key = prefix .. symbol .. suffix
  if redis.call('SADD', key, edge) == 1 then
    redis.call('SADD', edge_symbols, symbol)
    if redis.call('SCARD', key) == 1 then
      redis.call('SADD', active, symbol)
      announce(symbol, true, 1)
    end
  end
end

local function remove(symbol)
  local key = prefix .. symbol .. suffix
  if redis.call('SREM', key, edge) == 1 then
    redis.call('SREM', edge_symbols, symbol)
    local left = redis.call('SCARD', key)
    if left == 0 then
      redis.call('SREM', active, symbol)
      announce(symbol, false, 0)
    end
  end
end

-- Takes the (edge, symbol) pair to time `ts` unless a newer event was applied already.
local function fresh(symbol)
  local last = tonumber(redis.call('HGET', stamps, symbol) or '-1')
  if last > ts then return false end
  redis.call('HSET', stamps, symbol, ts)
  return true
end

local function remove_edge()
  for _, symbol in ipairs(redis.call('SMEMBERS', edge_symbols)) do remove(symbol) end
  redis.call('DEL', edge_symbols, stamps, lease)
  redis.call('SREM', edges, edge)
end

if kind == 'expire' then
  if redis.call('EXISTS', lease) == 0 then remove_edge() end
  return changed
end
if redis.call('EXISTS', tombstone) == 1 then return changed end
if kind == 'edge_down' then
  remove_edge()
  redis.call('SET', tombstone, ts, 'EX', tombstone_s)
  return changed
end

-- Any other event proves the edge was alive at `ts`: extend its lease from then.
redis.call('SADD', edges, edge)
local remaining = ts + lease_ms - now
if remaining > 0 then
  local current = redis.call('PTTL', lease)
  if current < remaining then redis.call('SET', lease, ts, 'PX', math.floor(remaining)) end
end

if kind == 'subscribe' then
  if fresh(ARGV[9]) then add(ARGV[9]) end
elseif kind == 'unsubscribe' then
  if fresh(ARGV[9]) then remove(ARGV[9]) end
elseif kind == 'edge_heartbeat' then
  local wanted = {}
  for i = 9, #ARGV do wanted[ARGV[i]] = true end
  for symbol, _ in pairs(wanted) do
    if fresh(symbol) then add(symbol) end
  end
  for _, symbol in ipairs(redis.call('SMEMBERS', edge_symbols)) do
    if not wanted[symbol] and fresh(symbol) then remove(symbol) end
  end
end
return changed
"""


@dataclass(frozen=True, slots=True)
class EdgeInfo:
    edge_id: str
    lease_age_ms: int | None  # time since the edge last proved alive; None: lease gone
    symbols: int


class RegistryState:
    def __init__(self, redis: aioredis.Redis, lease_seconds: float, tombstone_seconds: int):
        self._redis = redis
        self._lease_ms = int(lease_seconds * 1000)
        self._tombstone_s = tombstone_seconds
        self._apply = redis.register_script(_APPLY)

    async def apply(self, event: SubscriptionEvent) -> int:
        """Apply one event; returns how many symbols changed activity."""
        symbols = [event.symbol] if event.symbol else list(event.symbols)
        return await self._run(str(event.type), event.edge_id, event.ts or _now_ms(), symbols)

    async def expire(self, edge_id: str) -> int:
        """Remove `edge_id` if its lease has run out (a no-op for a live edge)."""
        return await self._run("expire", edge_id, _now_ms(), [])

    async def _run(self, kind: str, edge_id: str, ts: int, symbols: list[str]) -> int:
        keys = [
            names.edge_symbols_key(edge_id), names.edge_stamps_key(edge_id),
            names.edge_lease_key(edge_id), names.edge_down_key(edge_id), names.EDGES_KEY,
            names.ACTIVE_SYMBOLS_KEY, names.REGISTRY_OUTBOX_KEY,
        ]
        args = [kind, edge_id, ts, self._lease_ms, _now_ms(), self._tombstone_s,
                names.SYMBOL_EDGES_PREFIX, names.SYMBOL_EDGES_SUFFIX, *symbols]
        return int(await self._apply(keys=keys, args=args))

    async def edges_without_lease(self) -> list[str]:
        edges = sorted(m.decode() for m in await self._redis.smembers(names.EDGES_KEY))
        if not edges:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for edge in edges:
                pipe.exists(names.edge_lease_key(edge))
            leases = await pipe.execute()
        return [edge for edge, has_lease in zip(edges, leases) if not has_lease]

    async def active_symbols(self) -> list[tuple[str, int]]:
        symbols = sorted(m.decode() for m in await self._redis.smembers(names.ACTIVE_SYMBOLS_KEY))
        async with self._redis.pipeline(transaction=False) as pipe:
            for symbol in symbols:
                pipe.scard(names.symbol_edges_key(symbol))
            counts = await pipe.execute()
        return list(zip(symbols, counts))

    async def symbol_edges(self, symbol: str) -> list[str]:
        return sorted(m.decode() for m in await self._redis.smembers(names.symbol_edges_key(symbol)))

    async def edges(self) -> list[EdgeInfo]:
        edges = sorted(m.decode() for m in await self._redis.smembers(names.EDGES_KEY))
        async with self._redis.pipeline(transaction=False) as pipe:
            for edge in edges:
                pipe.get(names.edge_lease_key(edge))
                pipe.scard(names.edge_symbols_key(edge))
            replies = await pipe.execute()
        now = _now_ms()
        return [
            EdgeInfo(edge, now - int(stamp) if stamp else None, count)
            for edge, stamp, count in zip(edges, replies[::2], replies[1::2])
        ]


def _now_ms() -> int:
    return int(time.time() * 1000)
