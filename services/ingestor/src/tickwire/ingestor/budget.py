"""A provider's whole budget: its per-minute bucket (ratelimit.py) and its daily quota
(daybudget.py), both shared by every replica in Redis.

Guarantees: a symbol is granted only when both budgets pay for it. The day is asked first
and what the minute bucket then refuses is refunded to the day, so neither is spent for a
request that is not made (a replica dying in between loses those units for the day: it
spends less, never more). While the day is spent nothing is asked of Redis at all.
"""

from __future__ import annotations

from tickwire.core.models import iso_from_unix
from tickwire.ingestor.daybudget import DailyBudget
from tickwire.ingestor.ratelimit import RateBudget


class ProviderBudget:
    def __init__(self, minute: RateBudget, day: DailyBudget):
        self.minute = minute
        self.day = day

    @property
    def limited(self) -> bool:
        return self.minute.limited or self.day.limited

    @property
    def daily(self) -> bool:
        """Whether a daily quota applies (it is then spent on the most-watched first)."""
        return self.day.limited

    @property
    def last_remaining(self) -> float | None:
        return self.minute.last_remaining

    @property
    def day_left(self) -> int | None:
        """Units left today, as of the latest call (None without a daily quota or a call)."""
        return self.day.last.left if self.day.last is not None else None

    @property
    def day_spent_until(self) -> float | None:
        return self.day.spent_until

    async def take(self, units: int, minimum: int = 1) -> int:
        """How many of `units` symbols may be fetched now (0, or between minimum and units);
        their cost is spent from both budgets."""
        allowed, day = await self.day.take(units, minimum)
        if allowed == 0:
            return 0
        granted = await self.minute.take(allowed, minimum)
        await self.day.refund(allowed - granted, day)
        return granted

    async def drain(self) -> None:
        """The provider said "rate limited": hold every replica back for a minute."""
        await self.minute.drain()

    async def describe(self) -> dict | None:
        """What /api/providers shows (reads Redis); None when unlimited."""
        if not self.limited:
            return None
        described: dict = {"costPerSymbol": self.minute.unit_cost}
        if self.minute.limited:
            remaining = await self.minute.remaining()
            described |= {"perMinute": self.minute.per_minute, "remaining": round(remaining, 2)}
        if (state := await self.day.state()) is not None:
            described |= {"perDay": self.day.per_day, "spentToday": state.spent,
                          "leftToday": state.left, "resetsAt": iso_from_unix(state.resets_at)}
        return described
