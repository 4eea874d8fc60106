"""An ingestor replica SIGKILLed: once its Kafka session times out the other replica takes
its symbols, and clients see each symbol's `seq` continue in the same epoch."""

from __future__ import annotations

import time

from integration.faults import alive, client_pool, subscribed, updates_in
from integration.wsclient import WsClient, eventually, get_json

SYMBOLS = [f"IK{n}" for n in range(8)]
TAKEOVER_WITHIN = 40.0  # the group's session timeout (10 s), a rebalance, a first fetch


async def _owned(url: str) -> set[str]:
    _, body, _ = await get_json(f"{url}/api/providers")
    return set(body["symbols"])


async def _split(one: str, two: str) -> tuple[set[str], set[str]] | None:
    mine, theirs = await _owned(one), await _owned(two)
    if mine and theirs and not mine & theirs and mine | theirs == set(SYMBOLS):
        return mine, theirs
    return None


async def _owns_all(url: str) -> bool:
    return await _owned(url) == set(SYMBOLS)


async def _continued(client: WsClient, last: dict[str, dict], symbols: set[str],
                     timeout: float) -> dict[str, dict]:
    """The first update of each symbol after `last`; each must continue its sequence."""
    found: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while set(found) < symbols:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no new ticks for {sorted(symbols - set(found))} in {timeout}s")
        for update in updates_in(await client.next(timeout=left)):
            symbol = update["symbol"]
            previous = last[symbol]
            assert update["epoch"] == previous["epoch"], (symbol, update, previous)
            assert update["seq"] > previous["seq"], (symbol, update, previous)
            last[symbol] = update
            if symbol in symbols:
                found.setdefault(symbol, update)
    return found


async def test_a_killed_ingestor_replicas_symbols_move_and_seq_continues(stack):
    stack.registry()
    one = stack.ingestor("ingestor-1")
    two = stack.ingestor("ingestor-2")
    edge = stack.edge("edge-n1")
    async with client_pool() as clients:
        client = await subscribed(edge.ws_url, SYMBOLS)
        clients.append(client)
        _, theirs = await eventually(lambda: _split(one.url, two.url), timeout=40)
        last: dict[str, dict] = {}
        while set(last) < set(SYMBOLS):
            for update in updates_in(await client.next()):
                last[update["symbol"]] = update

        two.process.kill()
        killed = time.monotonic()
        await eventually(lambda: _owns_all(one.url), timeout=TAKEOVER_WITHIN)
        await _continued(client, last, theirs, TAKEOVER_WITHIN)
        took = time.monotonic() - killed
        assert alive(*(p for p in stack.started if p is not two.process)) == []
        print(f"\n{len(theirs)} symbols taken over, ticking again {took:.1f}s after the kill")
