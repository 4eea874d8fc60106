"""The registry's state transitions, each one atomic Lua script (see `state` for the model).

Both scripts share KEYS = edge_symbols, stamps, lease, tombstone, edges, active, outbox,
then the `symbol_edges` set of every symbol the transition may touch (all keys in the
registry's one hash-tag slot, so the scripts run on Redis Cluster too), and
ARGV[1..4] = edge, now_ms, tombstone_seconds, traceparent (W3C trace context of the
cause, or ""; copied into outbox entries so an announcement continues the trace of the
subscription that caused it), then the symbols of those declared sets, in KEYS order.
The caller declares the edge's current symbols as read just before; a script that finds
the edge holding a symbol it was not given changes nothing and returns -1 (the set moved
in between: read again and retry).
"""

_PRELUDE = """
local edge_symbols, stamps, lease, tombstone, edges, active, outbox =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local edge, now, tombstone_s = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local traceparent = ARGV[4] ~= '' and ARGV[4] or nil
local declared = #KEYS - 7
local symbol_key = {}
for i = 1, declared do symbol_key[ARGV[4 + i]] = KEYS[7 + i] end
local arg0 = 4 + declared  -- the script's own arguments follow
local changed = 0

-- Whether every symbol the edge holds had its set declared.
local function covers_edge()
  for _, symbol in ipairs(redis.call('SMEMBERS', edge_symbols)) do
    if not symbol_key[symbol] then return false end
  end
  return true
end

-- A missing key or field reads as -1, older than any timestamp.
local function number(value) return tonumber(value or '-1') end

local function announce(symbol, is_active, subscribers)
  redis.call('RPUSH', outbox, cjson.encode({v = 1, symbol = symbol, active = is_active,
                                            subscribers = subscribers, ts = now,
                                            traceparent = traceparent}))
  changed = changed + 1
end

local function add(symbol)
  local key = symbol_key[symbol]
  if redis.call('SADD', key, edge) == 1 then
    redis.call('SADD', edge_symbols, symbol)
    if redis.call('SCARD', key) == 1 then
      redis.call('SADD', active, symbol)
      announce(symbol, true, 1)
    end
  end
end

local function remove(symbol)
  local key = symbol_key[symbol]
  if redis.call('SREM', key, edge) == 1 then
    redis.call('SREM', edge_symbols, symbol)
    if redis.call('SCARD', key) == 0 then
      redis.call('SREM', active, symbol)
      announce(symbol, false, 0)
    end
  end
end

-- The edge's events up to `ts` are history: late copies of them must not resurrect it.
local function close(ts)
  if ts > number(redis.call('GET', tombstone)) then
    redis.call('SET', tombstone, ts, 'EX', tombstone_s)
  end
end

local function forget_edge()
  for _, symbol in ipairs(redis.call('SMEMBERS', edge_symbols)) do remove(symbol) end
  redis.call('DEL', edge_symbols, stamps, lease)
  redis.call('SREM', edges, edge)
end
"""

# Own ARGV: kind, ts, then the symbol (subscribe/unsubscribe) or the whole set (heartbeat).
# Returns {symbols whose activity changed, 1 if the event was stale and changed nothing},
# or {-1, 0} when a heartbeat or edge_down found undeclared symbols.
APPLY = _PRELUDE + """
local kind, ts = ARGV[arg0 + 1], tonumber(ARGV[arg0 + 2])
if ts <= number(redis.call('GET', tombstone)) then return {0, 1} end
if kind ~= 'subscribe' and kind ~= 'unsubscribe' and not covers_edge() then return {-1, 0} end

local floor = number(redis.call('HGET', lease, 'heartbeat'))
local function stamp(symbol) return number(redis.call('HGET', stamps, symbol)) end

-- The edge states its whole set at `ts`. A symbol follows this statement unless its own
-- subscribe/unsubscribe is newer. Stamps not newer than `ts` are then covered by the
-- heartbeat floor and dropped, which keeps the stamps hash small.
local function reconcile(wanted)
  for symbol in pairs(wanted) do
    if stamp(symbol) <= ts then add(symbol) end
  end
  for _, symbol in ipairs(redis.call('SMEMBERS', edge_symbols)) do
    if not wanted[symbol] and stamp(symbol) <= ts then remove(symbol) end
  end
  redis.call('HSET', lease, 'heartbeat', ts)
  local all = redis.call('HGETALL', stamps)
  for i = 1, #all, 2 do
    if tonumber(all[i + 1]) <= ts then redis.call('HDEL', stamps, all[i]) end
  end
end

if kind == 'edge_down' then
  -- "I hold nothing" as of `ts`; the edge is forgotten unless a newer incarnation
  -- (same id, later clock) has already been heard from.
  if ts >= floor then reconcile({}) end
  close(ts)
  if number(redis.call('HGET', lease, 'seen')) <= ts then forget_edge() end
  return {changed, 0}
end

redis.call('SADD', edges, edge)
if ts > number(redis.call('HGET', lease, 'seen')) then redis.call('HSET', lease, 'seen', ts) end

if kind == 'edge_heartbeat' then
  if ts < floor then return {changed, 1} end
  local wanted = {}
  for i = arg0 + 3, #ARGV do wanted[ARGV[i]] = true end
  reconcile(wanted)
  return {changed, 0}
end

local symbol = ARGV[arg0 + 3]
if ts < math.max(stamp(symbol), floor) then return {changed, 1} end
redis.call('HSET', stamps, symbol, ts)
if kind == 'subscribe' then add(symbol) else remove(symbol) end
return {changed, 0}
"""

# Own ARGV: cutoff. Removes the edge if its newest event is older than the cutoff.
# Returns {1 if removed, how many symbols became inactive}, or {-1, 0} as APPLY does.
EXPIRE = _PRELUDE + """
local cutoff = tonumber(ARGV[arg0 + 1])
local seen = number(redis.call('HGET', lease, 'seen'))
if seen >= cutoff then return {0, 0} end
if not covers_edge() then return {-1, 0} end
forget_edge()
if seen >= 0 then close(seen) end
return {1, changed}
"""
