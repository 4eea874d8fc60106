"""A reconnect storm against a real edge and Redis (issue #20): hundreds of sockets
subscribing at once each get their ack and every snapshot, however many subscribes
are in flight together (their snapshot reads share Redis round trips)."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest

pytestmark = pytest.mark.asyncio

CLIENTS = 300
SYMBOLS = [f"ST{i}" for i in range(8)]


async def subscribe_and_collect(session: aiohttp.ClientSession, url: str,
                                symbols: list[str]) -> tuple[bool, set[str]]:
    """(acked, symbols whose snapshot arrived) for one fresh socket."""
    async with session.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
        await ws.send_str(orjson.dumps({"action": "subscribe", "symbols": symbols}).decode())
        acked, snapshots = False, set()
        while not (acked and snapshots == set(symbols)):
            message = await ws.receive(timeout=30)
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            body = orjson.loads(message.data)
            if body["type"] == "subscribed":
                acked = True
            updates = body["updates"] if body["type"] == "batch_update" else [body]
            snapshots.update(u["symbol"] for u in updates if u.get("snapshot"))
        return acked, snapshots


async def test_hundreds_of_simultaneous_subscribes_all_get_ack_and_snapshots(stack, injector):
    edge = stack.edge("edge-s1", TICKWIRE_EDGE_CONNECTIONS_PER_SECOND_PER_IP="100000",
                      TICKWIRE_EDGE_CONNECTION_BURST_PER_IP="100000")
    for seq, symbol in enumerate(SYMBOLS, start=1):
        await injector.publish(symbol, seq)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        wanted = [SYMBOLS[i % 4:i % 4 + 5] for i in range(CLIENTS)]
        results = await asyncio.gather(*(subscribe_and_collect(session, edge.ws_url, symbols)
                                         for symbols in wanted))
    assert all(acked for acked, _ in results)
    assert [snapshots for _, snapshots in results] == [set(symbols) for symbols in wanted]
