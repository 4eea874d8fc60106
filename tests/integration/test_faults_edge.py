"""An edge SIGKILLed behind HAProxy: its clients reconnect through the load balancer to the
surviving edge and get snapshots that continue their sequence; the other edge's clients
notice nothing; the registry drops the dead edge once its lease runs out."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tickwire.client import ClientConfig, ConnectionState, TickwireClient

from integration.faults import alive, client_pool, subscribed, updates_in
from integration.wsclient import WsClient, eventually, get_json

SYMBOL = "EKILL"
CLIENTS = 12
LEASE_SECONDS = 6          # the stack fixture's registry lease
EXPIRY_SLACK = 5           # delivery allowance (1 s), sweep and heartbeat cadence


async def _reconnect(lb_ws_url: str, dead_edge: str, timeout: float = 20) -> WsClient:
    """What any client does: retry through the load balancer until a live edge answers."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        try:
            client = await WsClient.connect(lb_ws_url)
            hello = await client.next()
            assert hello["type"] == "connected" and hello["edgeId"] != dead_edge
            return client
        except (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 2)


async def _first_update(client: WsClient) -> dict:
    while True:
        found = updates_in(await client.next())
        if found:
            return found[0]


async def _edges(registry_url: str) -> set[str]:
    _, body, _ = await get_json(f"{registry_url}/api/edges")
    return {e["edgeId"] for e in body["edges"]}


async def _edges_are(registry_url: str, expected: set[str]) -> bool:
    return await _edges(registry_url) == expected


async def test_killed_edge_clients_reconnect_through_haproxy_and_get_snapshots(stack):
    registry_url = stack.registry().url
    stack.ingestor()
    stack.edge("edge-1")
    stack.edge("edge-2")
    lb = stack.haproxy()
    sdk = TickwireClient(ClientConfig(url=lb.ws_url, fallback_url=lb.url, reconnect_interval=0.2))
    sdk_updates = sdk.updates()
    async with client_pool() as clients:
        for _ in range(CLIENTS):
            clients.append(await subscribed(lb.ws_url, [SYMBOL]))
        home = {id(c): c.received[0]["edgeId"] for c in clients}
        assert set(home.values()) == {"edge-1", "edge-2"}  # round robin spread them
        await sdk.connect()
        try:
            await sdk.subscribe([SYMBOL])
            await eventually(lambda: _edges_are(registry_url, {"edge-1", "edge-2"}))
            last_seen = {}
            for client in clients:
                last_seen[id(client)] = (await client.updates(SYMBOL, 2))[-1]
            before_sdk = await _sdk_update(sdk_updates)

            victim_id = sdk.edge_id
            victim = next(e for e in stack.edges if e.process.name == victim_id)
            survivor_id = next(e for e in home.values() if e != victim_id)
            orphans = [c for c in clients if home[id(c)] == victim_id]
            others = [c for c in clients if home[id(c)] != victim_id]
            killed = time.monotonic()
            victim.process.kill()

            # Each orphan sees its socket end, reconnects, resubscribes; the first update
            # is the snapshot, in the same epoch and not behind what it had.
            for orphan in orphans:
                frame = await orphan.ws.receive(timeout=10)
                assert frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                      aiohttp.WSMsgType.ERROR)
            replacements = await asyncio.gather(
                *(_reconnect(lb.ws_url, victim_id) for _ in orphans))
            clients.extend(replacements)
            for orphan, fresh in zip(orphans, replacements):
                assert fresh.received[0]["edgeId"] == survivor_id
                await fresh.send({"action": "subscribe", "symbols": [SYMBOL]})
                await fresh.until(lambda m: m["type"] == "subscribed")
                snapshot = await _first_update(fresh)
                before = last_seen[id(orphan)]
                assert snapshot.get("snapshot") is True
                assert snapshot["epoch"] == before["epoch"] and snapshot["seq"] >= before["seq"]
            reconnected = time.monotonic() - killed

            # The survivor's own clients kept their sockets and their flow.
            for client in others:
                assert not client.ws.closed
                after = await client.updates(SYMBOL, 2)
                assert after[-1]["seq"] > last_seen[id(client)]["seq"]

            # The SDK did the same on its own: reconnected, resubscribed, live again.
            await eventually(lambda: _sdk_moved(sdk, victim_id), timeout=20)
            after_sdk = await _sdk_update(sdk_updates, newer_than=before_sdk.seq)
            assert after_sdk.real_time and after_sdk.epoch == before_sdk.epoch

            # The registry drops the dead edge when its lease runs out.
            await eventually(lambda: _edges_are(registry_url, {survivor_id}),
                             timeout=LEASE_SECONDS + EXPIRY_SLACK)
            expired = time.monotonic() - killed
            _, body, _ = await get_json(f"{registry_url}/api/symbols/{SYMBOL}")
            assert body["edges"] == [survivor_id]
            assert alive(*(p for p in stack.started if p is not victim.process)) == []
            print(f"\n{len(orphans)} orphaned clients back with snapshots "
                  f"{reconnected:.1f}s after the kill; edge expired after {expired:.1f}s")
        finally:
            await sdk.disconnect()


async def _sdk_update(updates, newer_than: int = -1, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while True:
        update = await asyncio.wait_for(anext(updates), max(0.1, deadline - time.monotonic()))
        if update.symbol == SYMBOL and update.seq > newer_than:
            return update


async def _sdk_moved(sdk: TickwireClient, victim_id: str) -> bool:
    return sdk.state is ConnectionState.OPEN and sdk.edge_id not in (None, victim_id)
