"""Removes edges whose lease ran out, and keeps the state gauges current.

An edge's lease runs `lease_seconds` from its newest event (on the edge's clock). It is
expired only once every partition of the subscriptions topic has been applied past the
end of the lease plus `DELIVERY_ALLOWANCE_MS` (`progress.caught_up_until`): then the
registry has read everything the edge could have said in time, and there was nothing.
A restarted or lagging registry, or one cut off from Redis or Kafka, therefore never
expires a live edge; it expires dead ones as soon as it has caught up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from tickwire.registry import progress
from tickwire.registry.health import Health
from tickwire.registry.metrics import ACTIVE_SYMBOLS, ACTIVITY_CHANGES, EDGES, EDGES_EXPIRED, OUTBOX
from tickwire.registry.errors import REDIS_ERRORS
from tickwire.registry.retry import describe
from tickwire.registry.state import RegistryState

log = logging.getLogger(__name__)

# An edge stamps an event before its producer delivers it; this much delivery delay is
# tolerated before the event's absence counts as the edge's silence.
DELIVERY_ALLOWANCE_MS = 1000


class Expiry:
    def __init__(self, state: RegistryState, health: Health, lease_seconds: float,
                 partitions: Callable[[], set[int] | None],
                 on_activity_change: Callable[[], None]):
        self._state = state
        self._health = health
        self._lease_ms = int(lease_seconds * 1000)
        self._partitions = partitions
        self._on_activity_change = on_activity_change

    async def run(self, interval: float) -> None:
        """Until cancelled: one sweep every `interval` seconds; Redis errors skip a sweep."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
                await self._update_gauges()
            except REDIS_ERRORS as exc:
                self._health.mark("redis", False)
                log.warning("edge expiry sweep skipped: %s", describe(exc))

    async def sweep(self) -> list[str]:
        """Expire the edges that are certainly dead; returns their ids."""
        until = progress.caught_up_until(await self._state.progress(), self._partitions() or ())
        if until is None:
            return []
        cutoff = until - self._lease_ms - DELIVERY_ALLOWANCE_MS
        expired = []
        for edge, seen in (await self._state.last_seen()).items():
            if seen is not None and seen >= cutoff:
                continue
            # The script checks the lease again: an event may have arrived meanwhile.
            removed, changed = await self._state.expire(edge, cutoff)
            if not removed:
                continue
            expired.append(edge)
            EDGES_EXPIRED.inc()
            log.info("edge %s expired: its lease ran out", edge,
                     extra={"edge": edge, "symbols_deactivated": changed})
            if changed:
                ACTIVITY_CHANGES.inc(changed)
                self._on_activity_change()
        return expired

    async def _update_gauges(self) -> None:
        active, edges, outbox = await self._state.sizes()
        ACTIVE_SYMBOLS.set(active)
        EDGES.set(edges)
        OUTBOX.set(outbox)
