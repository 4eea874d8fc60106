"""Cold reads (issue #17): the first REST read of a symbol nobody watches registers interest
and waits for the first quote, through the real registry and ingestor, instead of answering
404 at once."""

from __future__ import annotations

import asyncio

from integration.ingestor_fakes import metric
from integration.wsclient import eventually, get_json

# Generous: the first quote's path (Kafka → registry → Kafka → ingestor → Redis) on a busy
# machine; a cold read answers as soon as the tick arrives, so passing tests do not wait it.
WAIT_MS = "30000"


async def test_a_cold_read_answers_the_first_quote_of_a_symbol_nobody_watched(stack):
    stack.registry()
    stack.ingestor(TICKWIRE_INGESTOR_PROVIDERS="simulated", TICKWIRE_INGESTOR_STREAMS="off")
    edge = stack.edge("edge-c1", TICKWIRE_EDGE_COLD_READ_WAIT_MS=WAIT_MS)

    status, quote, headers = await get_json(f"{edge.url}/api/quotes/coldone")
    assert status == 200, quote
    assert quote["symbol"] == "COLDONE" and quote["price"] > 0 and quote["source"] == "simulated"
    assert quote["seq"] >= 1 and "etag" in headers

    status, body, _ = await get_json(f"{edge.url}/api/quotes?symbols=COLDTWO,COLDONE,COLDTHREE")
    assert status == 200 and body["missing"] == []
    assert sorted(q["symbol"] for q in body["quotes"]) == ["COLDONE", "COLDTHREE", "COLDTWO"]
    assert await metric(edge, "tickwire_edge_cold_reads_total", outcome="tick") >= 3
    assert await metric(edge, "tickwire_edge_cold_reads_waiting") == 0


async def test_a_symbol_no_provider_serves_still_gets_404_after_the_wait(stack):
    stack.registry()
    # The replay provider serves only the symbols in its file (AAPL, MSFT, …).
    stack.ingestor(TICKWIRE_INGESTOR_PROVIDERS="replay", TICKWIRE_INGESTOR_STREAMS="off")
    patient = stack.edge("edge-c2", TICKWIRE_EDGE_COLD_READ_WAIT_MS=WAIT_MS)
    edge = stack.edge("edge-c3", TICKWIRE_EDGE_COLD_READ_WAIT_MS="1500")
    status, quote, _ = await get_json(f"{patient.url}/api/quotes/AAPL")
    assert status == 200 and quote["source"] == "replay"  # the pipeline serves what it can

    status, body, _ = await get_json(f"{edge.url}/api/quotes/NOSUCH")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    assert await metric(edge, "tickwire_edge_cold_reads_total", outcome="timeout") == 1

    status, body, _ = await get_json(f"{edge.url}/api/quotes?symbols=NOSUCH2,AAPL")
    assert status == 200 and body["missing"] == ["NOSUCH2"]
    assert [q["symbol"] for q in body["quotes"]] == ["AAPL"]
    assert await metric(edge, "tickwire_edge_cold_reads_total", outcome="timeout") == 2


async def test_a_burst_of_cold_reads_waits_for_at_most_the_bound_and_wakes_on_ticks(
        stack, injector):
    # A wait far longer than this test waits for the burst: only the ticks can end it.
    edge = stack.edge("edge-c4", TICKWIRE_EDGE_COLD_READ_WAIT_MS="600000",
                      TICKWIRE_EDGE_COLD_READ_MAX_WAITING="5")
    symbols = [f"BURST{n}" for n in range(20)]
    burst = asyncio.create_task(get_json(f"{edge.url}/api/quotes?symbols={','.join(symbols)}"))
    try:
        await eventually(lambda: _waiting(edge, 5))
        # No room left: another cold read answers at once, while the burst still waits.
        status, body, _ = await get_json(f"{edge.url}/api/quotes/LATE")
        assert status == 404 and body["error"]["code"] == "NOT_FOUND" and not burst.done()
        # The first five are what the burst waits for; their ticks end the wait.
        for symbol in symbols[:5]:
            await eventually(lambda s=symbol: _subscribed(injector, s))
            await injector.publish(symbol, 1)
        status, body, _ = await asyncio.wait_for(burst, 60)
    finally:
        burst.cancel()
    assert status == 200
    assert sorted(q["symbol"] for q in body["quotes"]) == sorted(symbols[:5])
    assert body["missing"] == symbols[5:]
    assert await _waiting(edge, 0)


async def _waiting(edge, count: int) -> bool:
    return await metric(edge, "tickwire_edge_cold_reads_waiting") == count


async def _subscribed(injector, symbol: str) -> bool:
    return await injector.subscribers(symbol) == 1
