"""Subscription churn inside the message limit (issue #19, item 1): one socket alternating
subscribe/unsubscribe of the same symbols at 45 messages/s must not stall the registry
for anyone else. A brand-new symbol on another edge still gets its first tick within a
few seconds, the registry's lag comes back to zero, and no unwatched symbol stays active."""

from __future__ import annotations

import asyncio
import time

from integration.test_registry import active_symbols, metrics
from integration.wsclient import WsClient, eventually, subscribed

CHURNED = [f"CH{n}" for n in range(300)]
MESSAGES_PER_SECOND = 45
CHURN_SECONDS = 8
FIRST_TICK_WITHIN = 10.0


class Churner:
    """Alternates subscribe/unsubscribe of CHURNED at MESSAGES_PER_SECOND, `total` messages."""

    def __init__(self, client: WsClient, total: int):
        self.client = client
        self.total = total
        self.sent = 0

    async def run(self) -> None:
        while self.sent < self.total:
            action = "subscribe" if self.sent % 2 == 0 else "unsubscribe"
            await self.client.send({"action": action, "symbols": CHURNED})
            self.sent += 1
            await asyncio.sleep(1 / MESSAGES_PER_SECOND)  # the pace of the churn itself
        await self.client.send({"action": "unsubscribe", "symbols": CHURNED})


async def _drain(client: WsClient, stop: asyncio.Event) -> None:
    """Read the churner's replies so its socket never backs up."""
    while not stop.is_set():
        try:
            await client.next(timeout=0.5)
        except asyncio.TimeoutError:
            continue


async def _lag(registry_url: str) -> float:
    return sum(v for k, v in (await metrics(registry_url)).items()
               if k.startswith("tickwire_registry_consumer_lag{"))


async def test_churn_inside_the_limits_does_not_delay_a_new_symbol_elsewhere(stack):
    registry = stack.registry()
    stack.ingestor()
    churn_edge, other_edge = stack.edge("edge-c1"), stack.edge("edge-c2")
    client = await subscribed(churn_edge.ws_url, ["CHBASE"])
    churner = Churner(client, MESSAGES_PER_SECOND * CHURN_SECONDS)
    stop = asyncio.Event()
    churning = asyncio.ensure_future(churner.run())
    draining = asyncio.ensure_future(_drain(client, stop))
    try:
        await eventually(lambda: _past(churner, churner.total // 2), timeout=30)
        newcomer = await subscribed(other_edge.ws_url, ["FRESH"])
        asked = time.monotonic()
        try:
            await newcomer.updates("FRESH", 1, timeout=FIRST_TICK_WITHIN)
            first_tick = time.monotonic() - asked
        finally:
            await newcomer.close()
        assert churner.sent < churner.total, "the churn ended before the first tick"
        await asyncio.wait_for(churning, timeout=30)
        await eventually(lambda: _caught_up(registry.url), timeout=30)
        await eventually(lambda: _none_active(registry.url), timeout=30)
        print(f"\nfirst tick of a new symbol after {first_tick:.2f}s under churn")
    finally:
        stop.set()
        churning.cancel()
        await asyncio.gather(churning, draining, return_exceptions=True)
        await client.close()


async def _past(churner: Churner, count: int) -> bool:
    return churner.sent >= count


async def _caught_up(registry_url: str) -> bool:
    return await _lag(registry_url) == 0


async def _none_active(registry_url: str) -> bool:
    active = await active_symbols(registry_url)
    return not any(s in active for s in CHURNED)
