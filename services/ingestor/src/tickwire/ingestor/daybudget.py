"""Provider quotas per day (UTC), counted in Redis and shared by every ingestor replica.

Guarantees:
- All replicas together spend at most `per_day` units in one UTC day: each take is one
  Lua script (reset on a new day, then take what is left, atomically).
- Days only move forward: a replica whose clock is still on yesterday counts on the day
  another replica already started, so skewed clocks never reopen a spent day.
- Once the day's units are spent, this replica stops asking Redis (and so the provider)
  until the next UTC midnight.
- A refund (units taken but not used) counts only on the day it was taken.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from tickwire.core import names

DAY = 86_400

# KEYS: the day hash {day, spent}. ARGV: day (days since the epoch), cap, unit cost, units
# wanted, minimum units, mode ("take" | "refund" | "peek"), refund's day.
# Returns {granted units, units spent on the day, the day counted}.
_DAY_BUDGET = """
local day = tonumber(ARGV[1])
local state = redis.call('HMGET', KEYS[1], 'day', 'spent')
local stored = tonumber(state[1])
local spent = tonumber(state[2]) or 0
if stored == nil or day > stored then
  stored = day
  spent = 0
end
local cap = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local granted = 0
local mode = ARGV[6]
if mode == 'take' then
  granted = math.min(tonumber(ARGV[4]), math.floor((cap - spent) / cost))
  if granted < tonumber(ARGV[5]) then
    granted = 0
  end
  spent = spent + granted * cost
elseif mode == 'refund' and tonumber(ARGV[7]) == stored then
  spent = math.max(0, spent - tonumber(ARGV[4]) * cost)
end
redis.call('HSET', KEYS[1], 'day', stored, 'spent', spent)
redis.call('EXPIRE', KEYS[1], 2 * 86400)
return {granted, spent, stored}
"""


@dataclass(frozen=True, slots=True)
class DayState:
    spent: int
    left: int
    resets_at: float  # Unix seconds: the next UTC midnight


class DailyBudget:
    """One provider's units per UTC day; None `per_day` means no daily cap."""

    def __init__(self, redis: aioredis.Redis | None, provider: str, per_day: int,
                 unit_cost: int = 1, clock: Callable[[], float] = time.time):
        self.provider = provider
        self.per_day = per_day if per_day > 0 else None
        self.unit_cost = unit_cost
        self._clock = clock
        self._key = names.day_budget_key(provider)
        self._script = (redis.register_script(_DAY_BUDGET)
                        if redis is not None and self.per_day else None)
        self._spent_day: int | None = None  # a day known to be spent: no asking until it ends
        self.last: DayState | None = None

    @property
    def limited(self) -> bool:
        return self._script is not None

    def today(self) -> int:
        return int(self._clock() // DAY)

    @property
    def spent_until(self) -> float | None:
        """While the day is known to be spent: when it resets (Unix seconds)."""
        if self._spent_day is None or self.today() > self._spent_day:
            return None
        return (self._spent_day + 1) * DAY

    async def take(self, units: int, minimum: int = 1) -> tuple[int, int]:
        """(units granted, the day they count on); their cost is spent."""
        day = self.today()
        if self._script is None:
            return units, day
        if self.spent_until is not None:
            return 0, day
        granted, counted = await self._call(day, units, minimum, "take")
        return granted, counted

    async def refund(self, units: int, day: int) -> None:
        if self._script is not None and units > 0:
            await self._call(self.today(), units, 0, "refund", day)

    async def state(self) -> DayState | None:
        """The day so far (reads Redis); None without a daily cap."""
        if self._script is None:
            return None
        await self._call(self.today(), 0, 0, "peek")
        return self.last

    async def _call(self, day: int, units: int, minimum: int, mode: str,
                    refund_day: int = 0) -> tuple[int, int]:
        granted, spent, counted = await self._script(
            keys=[self._key],
            args=[day, self.per_day, self.unit_cost, units, minimum, mode, refund_day])
        spent, counted = int(spent), int(counted)
        left = max(0, self.per_day - spent)
        self.last = DayState(spent, left, (counted + 1) * DAY)
        # Spent: nothing more fits today (not even one symbol), so stop asking.
        self._spent_day = counted if left < self.unit_cost else None
        return int(granted), counted
