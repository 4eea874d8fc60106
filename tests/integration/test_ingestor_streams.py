"""Real ingestor processes holding a fake provider stream, with real Kafka and Redis: a
trade reaches a browser-side WebSocket client, interest drives the upstream subscriptions,
and three replicas never exceed a provider key's connection or symbol caps."""

from __future__ import annotations

import asyncio

from integration.ingestor_fakes import (active_symbols, cached_from, metric, providers_api,
                                        redis_at, start_ingestor)
from integration.stream_fakes import ALPACA, FINNHUB, FakeStreams, stream_env
from integration.stream_fakes import fake_streams  # noqa: F401 (a fixture)
from integration.wsclient import WsClient, eventually


async def until(predicate, timeout: float = 30.0):
    async def check():
        return predicate()
    return await eventually(check, timeout=timeout, interval=0.05)


async def test_a_trade_from_the_stream_reaches_a_websocket_client(stack, fake_streams):
    fakes = FakeStreams().start()
    fake_streams.append(fakes)
    fake = fakes[FINNHUB]
    stack.registry()
    ingestor = await start_ingestor(stack, **stream_env(
        fakes, "finnhub", TICKWIRE_INGESTOR_FRESHNESS_SECONDS=120))
    edge = await asyncio.to_thread(stack.edge, "edge-1")
    client = await WsClient.connect(edge.ws_url)
    try:
        await client.next()
        await client.send({"action": "subscribe", "symbols": ["AAPL"]})
        await client.until(lambda m: m["type"] == "subscribed")
        # First polled (the REST quote seeds the session), then streamed.
        await until(lambda: fake.subscribed() == {"AAPL"})
        assert fake.ever_subscribed() == {"AAPL"}
        await asyncio.to_thread(fakes.trade, FINNHUB, "AAPL", 777.77, 250)
        update = await client.until(lambda m: m["type"] == "price_update"
                                    and m["data"]["source"] == "finnhub-stream")
        assert update["data"]["price"] == 777.77 and update["symbol"] == "AAPL"
        live = [m for m in client.received if m["type"] == "price_update"]
        seqs = [m["seq"] for m in live]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap, no repeat
        assert len({m["epoch"] for m in live}) == 1

        async def settled():  # the poller lets go of the symbol on its next step
            body = await providers_api(ingestor)
            return body if body["polled"] == [] else None

        body = await eventually(settled, timeout=10)
        stream = next(s for s in body["streams"] if s["name"] == "finnhub")
        assert stream["state"] == "connected" and stream["symbols"] == ["AAPL"]
        assert stream["cap"] == 50 and stream["reconnects"] == 0
        assert stream["lastMessageAgeSeconds"] is not None
        assert body["streamed"] == ["AAPL"] and body["symbols"] == ["AAPL"]
        assert await metric(ingestor, "tickwire_ingestor_stream_trades_total",
                            stream="finnhub") == 1
        assert await metric(ingestor, "tickwire_ingestor_stream_connected", stream="finnhub") == 1
    finally:
        await client.close()
    # The last watcher left: the registry deactivates the symbol, the stream drops it.
    await until(lambda: fake.subscribed() == set(), timeout=60)


async def test_three_replicas_never_exceed_a_keys_connection_and_symbol_caps(
        stack, kafka_bootstrap, redis_url, fake_streams):
    fakes = FakeStreams(finnhub={"symbol_limit": 4}, alpaca={"symbol_limit": 3}).start()
    fake_streams.append(fakes)
    env = stream_env(fakes, "finnhub,alpaca", TICKWIRE_INGESTOR_FINNHUB_STREAM_SYMBOLS=4,
                     TICKWIRE_INGESTOR_ALPACA_STREAM_SYMBOLS=3,
                     TICKWIRE_INGESTOR_STREAM_LEASE_SECONDS=3,
                     TICKWIRE_INGESTOR_FRESHNESS_SECONDS=120)
    replicas = [await start_ingestor(stack, f"ingestor-{n}", **env) for n in (1, 2, 3)]
    symbols = {f"S{n:02d}": 1 + n % 4 for n in range(24)}
    async with active_symbols(kafka_bootstrap) as activate, redis_at(redis_url) as redis:
        await activate(symbols)
        for symbol in symbols:
            await cached_from(redis, symbol, "simulated")
        await until(lambda: fakes[FINNHUB].subscribed() and fakes[ALPACA].subscribed(), 60)

        async def holder(name: str):
            for replica in replicas:
                if replica.process.alive():
                    body = await providers_api(replica)
                    if next(s for s in body["streams"] if s["name"] == name)["state"] == "connected":
                        return replica
            return None

        first = await eventually(lambda: holder(FINNHUB), timeout=30)
        # The holder dies: once its lease runs out another replica holds the key.
        first.process.kill()
        replicas.remove(first)
        await eventually(lambda: holder(FINNHUB), timeout=60)
        await until(lambda: fakes[FINNHUB].subscribed(), 60)
        streamed = set()
        for replica in replicas:
            streamed |= set((await providers_api(replica))["streamed"])
        assert streamed <= set(symbols)
    for provider, cap in ((FINNHUB, 4), (ALPACA, 3)):
        fake = fakes[provider]
        assert fake.most_connections == 1 and fake.refused == 0, provider
        assert 0 < fake.most_symbols <= cap, provider
        assert fake.ever_subscribed() <= set(symbols)
