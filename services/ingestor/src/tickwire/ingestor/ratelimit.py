"""Provider rate limits as token buckets in Redis, shared by every ingestor replica.

A bucket holds up to `per_minute` tokens and refills at `per_minute / 60` tokens per second,
so all replicas together spend at most `per_minute` per minute in the long run; a full
bucket also allows a burst of that size (a batch), so a 60-second window right after an idle
spell can see up to twice the limit. When a provider says it is rate limited anyway, the
bucket is emptied, holding every replica back until it refills.

Each call is one Lua script: refill by elapsed time, then take, atomically. Time is Redis's
own clock (TIME), so replicas with skewed clocks still share one consistent bucket.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from tickwire.core import names

# ARGV: capacity, refill per ms, unit cost, units wanted, minimum units, mode.
# mode "take": grant as many units as affordable (0 if fewer than the minimum);
# "peek": grant nothing; "drain": empty the bucket.
# Returns {granted units, tokens left (as a string: Lua numbers become integers in replies)}.
_BUCKET = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local capacity = tonumber(ARGV[1])
local per_ms = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * per_ms)
local granted = 0
if ARGV[6] == 'take' then
  local cost = tonumber(ARGV[3])
  granted = math.min(tonumber(ARGV[4]), math.floor(tokens / cost + 1e-9))
  if granted < tonumber(ARGV[5]) then
    granted = 0
  end
  tokens = math.max(0, tokens - granted * cost)
elseif ARGV[6] == 'drain' then
  tokens = 0
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / per_ms) * 2)
return {granted, tostring(tokens)}
"""


class RateBudget:
    """The budget of one provider. `unit_cost` is what one symbol costs (a request for
    Alpha Vantage, credits for Twelve Data); None `per_minute` means unlimited."""

    def __init__(self, redis: aioredis.Redis | None, provider: str, per_minute: int,
                 unit_cost: int = 1):
        self.provider = provider
        self.per_minute = per_minute if per_minute > 0 else None
        self.unit_cost = unit_cost
        self._key = names.rate_bucket_key(provider)
        self.last_remaining: float | None = None  # as of the latest call
        self._script = redis.register_script(_BUCKET) if redis is not None and self.per_minute else None

    @property
    def limited(self) -> bool:
        return self._script is not None

    async def take(self, units: int, minimum: int = 1) -> int:
        """How many of `units` symbols may be fetched now (0, or between minimum and units);
        their cost is spent."""
        if self._script is None:
            return units
        granted, _ = await self._call(units, minimum, "take")
        return granted

    async def remaining(self) -> float | None:
        """Tokens left now; None when unlimited."""
        if self._script is None:
            return None
        _, tokens = await self._call(0, 0, "peek")
        return tokens

    async def drain(self) -> None:
        if self._script is not None:
            await self._call(0, 0, "drain")

    async def _call(self, units: int, minimum: int, mode: str) -> tuple[int, float]:
        granted, tokens = await self._script(
            keys=[self._key],
            args=[self.per_minute, self.per_minute / 60_000, self.unit_cost, units, minimum, mode])
        self.last_remaining = float(tokens)
        return int(granted), self.last_remaining
