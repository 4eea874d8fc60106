"""Every quote provider failing, then recovering: the cached quote is still served (marked
stale), subscribed clients are told DATA_STALE, the socket stays open, and live ticks
resume in sequence once a provider answers again."""

from __future__ import annotations

import time

from integration.faults import alive, client_pool, flaky_twelvedata, start, subscribed
from integration.wsclient import eventually, get_json

SYMBOL = "PFAIL"
NOTICE_WITHIN = 10.0


async def _rest_stale(edge_url: str, stale: bool) -> dict | None:
    status, body, _ = await get_json(f"{edge_url}/api/quotes/{SYMBOL}")
    return body if status == 200 and body["stale"] is stale else None


async def _ingestor_flags(ingestor_url: str, flagged: bool) -> bool:
    _, body, _ = await get_json(f"{ingestor_url}/api/providers")
    return (SYMBOL in body["stale"]) is flagged


async def test_all_providers_failing_gives_data_stale_then_live_data_again(stack):
    async with flaky_twelvedata() as api, client_pool() as clients:
        stack.registry()
        ingestor = await start(stack.ingestor, **api.env(),
                               TICKWIRE_INGESTOR_FRESHNESS_SECONDS="1",
                               TICKWIRE_INGESTOR_BREAKER_FAILURES="1000")
        edge = await start(stack.edge, "edge-p1", TICKWIRE_EDGE_FRESHNESS_SECONDS="1")
        client = await subscribed(edge.ws_url, [SYMBOL])
        clients.append(client)
        live = await client.updates(SYMBOL, 2)
        assert live[-1]["data"]["source"] == "twelvedata"

        api.failing = True
        failed_at = time.monotonic()
        # The ingestor flags the symbol; the edge still serves the last quote, as stale.
        await eventually(lambda: _ingestor_flags(ingestor.url, True), timeout=NOTICE_WITHIN)
        stale_body = await eventually(lambda: _rest_stale(edge.url, True), timeout=NOTICE_WITHIN)
        # The client is told, on the same socket.
        notice = None
        try:
            notice = await client.until(
                lambda m: m["type"] == "error" and m.get("code") == "DATA_STALE",
                timeout=max(1.0, NOTICE_WITHIN - (time.monotonic() - failed_at)))
        except TimeoutError:
            pass
        told_after = time.monotonic() - failed_at

        api.failing = False
        # Live again: new ticks continue the sequence; the REST view is fresh.
        resumed = await client.updates(SYMBOL, 2, timeout=20)
        assert resumed[0]["seq"] > stale_body["seq"]
        assert resumed[0]["epoch"] == stale_body["epoch"]
        await eventually(lambda: _ingestor_flags(ingestor.url, False), timeout=20)
        await eventually(lambda: _rest_stale(edge.url, False), timeout=20)
        assert not client.ws.closed
        assert alive(*stack.started) == []

        assert notice is not None, (
            f"no DATA_STALE error reached the client within {NOTICE_WITHIN:.0f}s of every "
            f"provider failing (the ingestor flagged {SYMBOL} stale and REST served it "
            f"stale); received: {[m.get('type') for m in client.received]}")
        assert notice["symbols"] == [SYMBOL] and notice["message"]
        print(f"\nDATA_STALE reached the client {told_after:.1f}s after the providers failed")
