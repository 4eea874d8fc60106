"""The edge's lifecycle guarantees against the real stack: a client is closed rather than
silently lose a control message, a drain closes unreadable clients concurrently,
subscription churn reaches Kafka only as its net transitions, and a failed Redis
SUBSCRIBE is rolled back."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import msgpack

from tickwire.core import names
from tickwire.core.events import SubscriptionEvent, SubscriptionEventType

from integration.faults import metric
from integration.hostile import kafka_records
from integration.rawws import RawWebSocket
from integration.wsclient import WsClient, eventually, subscribed

PADDING = "x" * 8000  # big frames fill a reader's buffers quickly


async def _channel_subscribers(injector, symbol: str, count: int) -> bool:
    return await injector.subscribers(symbol) == count


async def _block(injector, symbol: str, rounds: int = 150) -> None:
    """Publish far more than an unread socket's buffers hold (kernel and transport)."""
    for seq in range(1, rounds + 1):
        await injector.publish(symbol, seq, source=PADDING)


async def test_a_client_whose_control_queue_overflows_is_closed_not_silently_dropped(
        stack, injector):
    edge = stack.edge("edge-l1", TICKWIRE_EDGE_SLOW_CLIENT_SECONDS="600",
                      TICKWIRE_EDGE_MESSAGES_PER_SECOND="5000",
                      TICKWIRE_EDGE_MESSAGE_BURST="5000")
    reader = RawWebSocket(edge.port, receive_buffer=4096)
    try:
        reader.send_json({"action": "subscribe", "symbols": ["OVF"]})
        await eventually(lambda: _channel_subscribers(injector, "OVF", 1))
        await _block(injector, "OVF")
        await eventually(lambda: _conflated(edge.url))  # the writer waits on the peer
        # Every pong queues behind the blocked write; past 256 one would be lost.
        for n in range(300):
            reader.send_json({"action": "ping", "timestamp": str(n)})
        await eventually(lambda: _closed(edge.url, "control queue full"), timeout=30)
        reader.drain_until_closed()  # the edge ended the connection
        assert await metric(edge.url, "tickwire_edge_dropped_messages_total") >= 1
    finally:
        reader.close()


async def _conflated(url: str) -> bool:
    return await metric(url, "tickwire_edge_conflated_updates_total") > 0


async def _closed(url: str, reason: str) -> bool:
    return await metric(url, "tickwire_edge_connections_closed_total",
                        f'{{reason="{reason}"}}') >= 1


async def test_a_drain_closes_unreadable_clients_concurrently(stack, injector):
    edge = stack.edge("edge-l2", TICKWIRE_EDGE_SLOW_CLIENT_SECONDS="600",
                      TICKWIRE_EDGE_DRAIN_SECONDS="2")
    readers = [RawWebSocket(edge.port, receive_buffer=4096) for _ in range(13)]
    try:
        for reader in readers:
            reader.send_json({"action": "subscribe", "symbols": ["STUCK"]})
        await eventually(lambda: _channel_subscribers(injector, "STUCK", 1))
        await eventually(lambda: _watchers(edge.url, 13))
        await _block(injector, "STUCK")
        await eventually(lambda: _conflated(edge.url))
        await injector.redis.publish(names.CONTROL_CHANNEL,
                                     msgpack.packb({"type": "drain", "edge": "edge-l2"}))
        # Each unreadable client keeps its close waiting (a flush, then a close frame it
        # cannot take): one after another, 13 of them outlast a pod's 30 s grace period.
        # Together they take the 2 s window plus one client's wait.
        assert await asyncio.to_thread(edge.process.proc.wait, 25) == 0
    finally:
        for reader in readers:
            reader.close()


async def _watchers(url: str, count: int) -> bool:
    return await metric(url, "tickwire_edge_connections", '{kind="websocket"}') == count


async def test_subscription_churn_reaches_kafka_only_as_net_transitions(stack, kafka_bootstrap):
    edge = stack.edge("edge-l3", TICKWIRE_EDGE_UNSUBSCRIBE_DELAY_SECONDS="1")
    symbols = [f"CHURN{n}" for n in range(5)]
    client = await subscribed(edge.ws_url, symbols)
    try:
        for _ in range(30):  # a page that keeps reloading its watchlist
            await client.send({"action": "unsubscribe", "symbols": symbols})
            await client.send({"action": "subscribe", "symbols": symbols})
        await client.send({"action": "ping", "timestamp": "end"})
        await client.until(lambda m: m["type"] == "pong")
        assert not [m for m in client.received if m["type"] == "error"]
    finally:
        await client.close()
    # The client left: one unsubscribe per symbol follows, after the delay.
    events = await eventually(lambda: _transitions(kafka_bootstrap, "edge-l3", len(symbols)),
                              timeout=30)
    assert events == Counter({(kind, symbol): 1 for symbol in symbols
                              for kind in (SubscriptionEventType.SUBSCRIBE,
                                           SubscriptionEventType.UNSUBSCRIBE)})


async def _transitions(bootstrap: str, edge_id: str, symbols: int) -> Counter | None:
    events = Counter()
    for _, value in await kafka_records(bootstrap, names.SUBSCRIPTIONS_TOPIC):
        event = SubscriptionEvent.decode(value)
        if event.edge_id == edge_id and event.symbol:
            events[(event.type, event.symbol)] += 1
    unsubscribed = sum(n for (kind, _), n in events.items()
                       if kind == SubscriptionEventType.UNSUBSCRIBE)
    return events if unsubscribed >= symbols else None


async def test_a_refused_redis_subscribe_is_rolled_back_and_can_be_retried(
        stack, injector, redis_url, kafka_bootstrap):
    """The edge's Redis user may not subscribe `DENIED`: Redis refuses the SUBSCRIBE."""
    user, password = f"edge-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await injector.redis.execute_command(
        "ACL", "SETUSER", user, "on", f">{password}", "~*", "resetchannels",
        f"&{names.CONTROL_CHANNEL}", f"&{names.STATUS_CHANNEL}",
        f"&{names.tick_channel('OKAY')}", "+@all")
    try:
        edge = stack.edge("edge-l4", TICKWIRE_REDIS_URL=redis_url.replace(
            "redis://", f"redis://{user}:{password}@", 1))
        client = await WsClient.connect(edge.ws_url)
        try:
            assert (await client.next())["type"] == "connected"
            await client.send({"action": "subscribe", "symbols": ["DENIED", "OKAY"]})
            error = await client.until(lambda m: m["type"] == "error")
            assert error["code"] == "SUBSCRIPTION_FAILED"
            assert sorted(error["symbols"]) == ["DENIED", "OKAY"]
            assert await metric(edge.url, "tickwire_edge_symbols") == 0
            # Nothing is held: a retry of the allowed symbol subscribes afresh.
            await client.send({"action": "subscribe", "symbols": ["OKAY"]})
            ack = await client.until(lambda m: m["type"] in ("subscribed", "error"))
            assert ack["type"] == "subscribed" and ack["symbols"] == ["OKAY"]
            await eventually(lambda: _channel_subscribers(injector, "OKAY", 1))
            await injector.publish("OKAY", 1)
            [update] = await client.updates("OKAY", 1)
            assert update["seq"] == 1
            assert await injector.subscribers("DENIED") == 0
            assert await metric(edge.url, "tickwire_edge_symbols") == 1
            announced = {SubscriptionEvent.decode(value).symbol for _, value in
                         await kafka_records(kafka_bootstrap, names.SUBSCRIPTIONS_TOPIC)}
            assert "DENIED" not in announced
        finally:
            await client.close()
    finally:
        await injector.redis.execute_command("ACL", "DELUSER", user)
