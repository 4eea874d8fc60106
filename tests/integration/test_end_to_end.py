"""The first tick end to end: HAProxy → two edges → Kafka → registry → ingestor → Redis."""

from __future__ import annotations

from integration.wsclient import WsClient, eventually, get_json


async def active_symbols(registry_url: str) -> dict[str, int]:
    _, body, _ = await get_json(f"{registry_url}/api/symbols")
    return {entry["symbol"]: entry["edges"] for entry in body["symbols"]}


async def test_quotes_flow_through_haproxy_and_both_edges(stack):
    registry = stack.registry()
    stack.ingestor()
    # A REST read holds interest for a while; short here so the symbol's end is visible.
    stack.edge("edge-1", TICKWIRE_EDGE_POLL_INTEREST_SECONDS="2")
    stack.edge("edge-2", TICKWIRE_EDGE_POLL_INTEREST_SECONDS="2")
    lb = stack.haproxy()

    # Round-robin without a cookie: two clients land on the two edges.
    clients = [await WsClient.connect(lb.ws_url) for _ in range(2)]
    try:
        hellos = [await c.next() for c in clients]
        assert all(h["type"] == "connected" and h["clientId"] for h in hellos)
        assert {h["edgeId"] for h in hellos} == {"edge-1", "edge-2"}

        for client in clients:
            await client.send({"action": "subscribe", "symbols": ["AAPL"]})
            ack = await client.until(lambda m: m["type"] == "subscribed")
            assert ack["symbols"] == ["AAPL"]

        streams = [await c.updates("AAPL", 4) for c in clients]
        for updates in streams:
            seqs = [u["seq"] for u in updates]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
            assert all(u["data"]["symbol"] == "AAPL" and u["data"]["price"] > 0 for u in updates)
            assert len({u["epoch"] for u in updates}) == 1
        # Both edges relay the same ticks: the later stream's seqs are a suffix of one history.
        live = [{u["seq"] for u in s if not u.get("snapshot")} for s in streams]
        assert live[0] & live[1]

        assert (await active_symbols(registry.url)).get("AAPL") == 2

        status, quote, headers = await get_json(f"{lb.url}/api/quotes/AAPL")
        assert status == 200 and quote["symbol"] == "AAPL" and quote["price"] > 0
        assert quote["stale"] is False and headers.get("x-tickwire-edge") in {"edge-1", "edge-2"}
    finally:
        for client in clients:
            await client.close()

    await eventually(lambda: _inactive(registry.url, "AAPL"))


async def _inactive(registry_url: str, symbol: str) -> bool:
    return symbol not in await active_symbols(registry_url)


async def test_sticky_cookie_keeps_a_client_on_one_edge(stack):
    stack.registry()
    stack.edge("edge-1")
    stack.edge("edge-2")
    lb = stack.haproxy()
    status, _, headers = await get_json(f"{lb.url}/healthz")
    assert status == 200
    cookie = headers["set-cookie"].split(";")[0]
    first = headers["x-tickwire-edge"]
    for _ in range(6):
        _, _, again = await get_json(f"{lb.url}/healthz", headers={"Cookie": cookie})
        assert again["x-tickwire-edge"] == first
    client = await WsClient.connect(lb.ws_url, headers={"Cookie": cookie})
    try:
        hello = await client.next()
        assert hello["edgeId"] == first
    finally:
        await client.close()
