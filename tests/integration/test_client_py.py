"""The Python SDK against the real stack: HAProxy → two edges → Kafka → registry → ingestor."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from tickwire.client import (ClientConfig, ConnectionState, ConnectionStatus, TickwireClient,
                             Update)

from integration.wsblocker import WsBlocker
from integration.wsclient import WsClient, eventually


async def take(updates: AsyncIterator[Update], predicate: Callable[[Update], bool], count: int,
               timeout: float = 30.0) -> list[Update]:
    """The next `count` updates matching `predicate`, within `timeout` seconds."""
    found: list[Update] = []
    deadline = time.monotonic() + timeout
    while len(found) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{len(found)}/{count} matching updates in {timeout}s")
        update = await asyncio.wait_for(anext(updates), left)
        if predicate(update):
            found.append(update)
    return found


def increasing(updates: list[Update]) -> bool:
    seqs = [u.seq for u in updates]
    return seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_updates_flow_through_the_stack(stack):
    lb = stack.full()
    client = TickwireClient(ClientConfig(url=lb.ws_url, fallback_url=lb.url,
                                         heartbeat_interval=1.0))
    updates = client.updates()
    await client.connect()
    try:
        assert client.state is ConnectionState.OPEN and client.is_real_time
        assert client.edge_id in {"edge-1", "edge-2"}
        await client.subscribe(["aapl", "MSFT"])
        assert client.active_subscriptions() == {"AAPL", "MSFT"}

        for symbol in ("AAPL", "MSFT"):
            got = await take(updates, lambda u, s=symbol: u.symbol == s, 3)
            assert increasing(got)
            assert all(u.data["symbol"] == symbol and u.data["price"] > 0 for u in got)
            assert all(u.real_time for u in got)

        await client.unsubscribe(["MSFT"])
        assert client.active_subscriptions() == {"AAPL"}
        await take(updates, lambda u: u.symbol == "AAPL", 2)

        await eventually(_async(lambda: client.latency > 0), timeout=10)
        metrics = client.metrics()
        assert metrics.connection_state is ConnectionState.OPEN
        assert metrics.message_count > 0 and metrics.active_subscriptions == 1
        assert metrics.connected_at is not None and metrics.last_message_at is not None
        assert metrics.average_latency > 0
    finally:
        await client.disconnect()
    assert client.state is ConnectionState.CLOSED
    leftover = await asyncio.wait_for(_drain(updates), 5)  # the iterator ends at disconnect
    assert all(u.symbol in {"AAPL", "MSFT"} for u in leftover)


async def test_killed_edge_reconnects_through_haproxy_and_resubscribes(stack):
    lb = stack.full()
    client = TickwireClient(ClientConfig(url=lb.ws_url, fallback_url=lb.url,
                                         reconnect_interval=0.2))
    states: list[ConnectionState] = []
    client.on_connection_change(states.append)
    updates = client.updates()
    await client.connect()
    try:
        await client.subscribe(["AAPL", "NVDA"])
        before = await take(updates, lambda u: u.symbol == "AAPL", 2)
        first_edge = client.edge_id
        victim = next(e for e in stack.edges if e.process.name == first_edge)

        victim.process.kill()

        await eventually(_async(lambda: ConnectionState.RECONNECTING in states), timeout=15)
        await eventually(_async(lambda: client.state is ConnectionState.OPEN
                                and client.edge_id not in (None, first_edge)), timeout=60)
        # Resubscribed on the surviving edge: both symbols keep coming, live, in order.
        after = {}
        for symbol in ("AAPL", "NVDA"):
            after[symbol] = await take(updates, lambda u, s=symbol: u.symbol == s and u.real_time, 2)
            assert increasing(after[symbol])
        assert after["AAPL"][-1].seq > before[-1].seq
        assert client.active_subscriptions() == {"AAPL", "NVDA"}
    finally:
        await client.disconnect()


async def test_blocked_websocket_falls_back_to_polling_then_returns_live(stack):
    lb = stack.full()
    blocker = await WsBlocker(lb.port).start()
    # Another client keeps AAPL active upstream, so its price moves while ours polls;
    # this test is about the SDK's fallback, not about the edge's polling interest.
    watcher = await WsClient.connect(lb.ws_url)
    await watcher.send({"action": "subscribe", "symbols": ["AAPL"]})
    client = TickwireClient(ClientConfig(url=blocker.ws_url, fallback_url=lb.url,
                                         reconnect_interval=0.05, max_reconnect_attempts=3,
                                         polling_interval=0.5))
    updates = client.updates()
    try:
        await client.connect()
        await client.subscribe(["AAPL"])
        await take(updates, lambda u: u.real_time, 1)
        assert client.status is ConnectionStatus.LIVE

        blocker.block()
        await eventually(_async(lambda: client.status is ConnectionStatus.DELAYED), timeout=30)
        assert not client.is_real_time and client.is_polling and blocker.refused >= 3
        polled = await take(updates, lambda u: u.symbol == "AAPL" and not u.real_time, 2)
        assert increasing(polled)

        # An action made while offline is polled at once and replayed on reconnect.
        await client.subscribe(["MSFT"])
        await take(updates, lambda u: u.symbol == "MSFT" and not u.real_time, 1)

        blocker.unblock()
        await eventually(_async(lambda: client.status is ConnectionStatus.LIVE), timeout=30)
        assert client.is_real_time and not client.is_polling
        for symbol in ("AAPL", "MSFT"):
            await take(updates, lambda u, s=symbol: u.symbol == s and u.real_time, 2)
    finally:
        await client.disconnect()
        await watcher.close()
        await blocker.stop()


async def _drain(updates: AsyncIterator[Update]) -> list[Update]:
    return [u async for u in updates]


def _async(check: Callable[[], bool]):
    async def run() -> bool:
        return check()
    return run
