"""The REST and SSE fallbacks (DESIGN.md §2)."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson

from integration.wsclient import eventually, get_json


async def test_rest_quote_with_etag_stale_and_errors(stack, injector):
    edge = stack.edge("edge-f1", TICKWIRE_EDGE_FRESHNESS_SECONDS="1")
    await injector.publish("ETAG", 7)
    status, quote, headers = await get_json(f"{edge.url}/api/quotes/etag")
    assert status == 200 and quote["symbol"] == "ETAG" and quote["seq"] == 7
    assert quote["stale"] is False and 0 <= quote["ageMs"] < 1000
    assert headers["x-tickwire-edge"] == "edge-f1"
    etag = headers["etag"]
    status, _, again = await get_json(f"{edge.url}/api/quotes/ETAG",
                                      headers={"If-None-Match": etag})
    assert status == 304 and again["etag"] == etag
    await injector.publish("ETAG", 8)
    status, quote, headers = await get_json(f"{edge.url}/api/quotes/ETAG",
                                            headers={"If-None-Match": etag})
    assert status == 200 and quote["seq"] == 8 and headers["etag"] != etag
    quote = await eventually(lambda: _stale_quote(f"{edge.url}/api/quotes/ETAG"))
    assert quote["ageMs"] >= 1000

    status, body, _ = await get_json(f"{edge.url}/api/quotes/NOPE")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    status, body, _ = await get_json(f"{edge.url}/api/quotes/bad%20name")
    assert status == 400 and body["error"]["code"] == "INVALID_SYMBOL"


async def _stale_quote(url: str) -> dict | None:
    _, quote, _ = await get_json(url)
    return quote if quote["stale"] else None


async def test_rest_batch_lists_quotes_and_missing(stack, injector):
    edge = stack.edge("edge-f2")
    await injector.publish("BA", 1)
    await injector.publish("BB", 2)
    status, body, headers = await get_json(f"{edge.url}/api/quotes?symbols=BA,bb,BC,BA")
    assert status == 200
    assert [q["symbol"] for q in body["quotes"]] == ["BA", "BB"] and body["missing"] == ["BC"]
    status, _, _ = await get_json(f"{edge.url}/api/quotes?symbols=BA,bb,BC",
                                  headers={"If-None-Match": headers["etag"]})
    assert status == 304
    for query in ("", "?symbols=", "?symbols=GOOD,b%20ad", "?symbols=" + ",".join(["X"] * 501)):
        status, body, _ = await get_json(f"{edge.url}/api/quotes{query}")
        assert status == 400 and body["error"]["code"] == "INVALID_SYMBOL", query


async def test_a_polled_symbol_stays_subscribed_upstream_for_the_interest_window(stack, injector):
    registry = stack.registry()
    edge = stack.edge("edge-f3", TICKWIRE_EDGE_POLL_INTEREST_SECONDS="3")
    status, _, _ = await get_json(f"{edge.url}/api/quotes/POLLED")
    assert status == 404  # nothing cached yet, but the read registers interest
    assert await injector.subscribers("POLLED") == 1
    await eventually(lambda: _active(registry.url, "POLLED"))
    await eventually(lambda: _inactive(registry.url, "POLLED"), timeout=30)
    assert await injector.subscribers("POLLED") == 0


async def _active(url: str, symbol: str) -> bool:
    _, body, _ = await get_json(f"{url}/api/symbols")
    return any(s["symbol"] == symbol for s in body["symbols"])


async def _inactive(url: str, symbol: str) -> bool:
    return not await _active(url, symbol)


async def _sse_events(response: aiohttp.ClientResponse, count: int) -> list[dict]:
    events = []
    async for line in response.content:
        if line.startswith(b"data: "):
            events.append(orjson.loads(line[6:]))
            if len(events) == count:
                return events
    raise AssertionError(f"stream ended after {events}")


async def test_sse_stream_sends_snapshot_first_then_updates(stack, injector):
    edge = stack.edge("edge-f4")
    await injector.publish("SSE1", 3)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{edge.url}/api/stream?symbols=SSE1,SSE2") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            [snapshot] = await asyncio.wait_for(_sse_events(response, 1), 10)
            assert snapshot["type"] == "price_update" and snapshot["snapshot"] is True
            assert snapshot["seq"] == 3
            await eventually(lambda: _subscribed(injector, "SSE2"))
            await injector.publish("SSE2", 1)
            await injector.publish("SSE1", 4)
            events = await asyncio.wait_for(_sse_events(response, 2), 10)
            assert {(e["symbol"], e["seq"]) for e in events} == {("SSE2", 1), ("SSE1", 4)}
            assert all(e["type"] == "price_update" for e in events)
    await eventually(lambda: _unsubscribed(injector, "SSE1"))
    status, body, _ = await get_json(f"{edge.url}/api/stream?symbols=bad%20one")
    assert status == 400


async def _subscribed(injector, symbol: str) -> bool:
    return await injector.subscribers(symbol) == 1


async def _unsubscribed(injector, symbol: str) -> bool:
    return await injector.subscribers(symbol) == 0


async def test_every_answer_names_the_edge(stack):
    edge = stack.edge("edge-f5")
    for path, expected in (("/nope", 404), ("/api/quotes/", 404), ("/healthz", 200),
                           ("/readyz", 200), ("/metrics", 200), ("/", 200)):
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{edge.url}{path}") as response:
                assert response.status == expected, path
                assert response.headers["X-Tickwire-Edge"] == "edge-f5", path
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{edge.url}/api/quotes/AAPL") as response:
                assert response.status == 405
                assert response.headers["X-Tickwire-Edge"] == "edge-f5"
