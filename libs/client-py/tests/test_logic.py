"""Pure logic of the SDK: backoff, ordering, configuration, the offline queue."""

from __future__ import annotations

import pytest

from tickwire.client import (ClientConfig, ConnectionState, ConnectionStatus, QueueFull,
                             TickwireClient, backoff_delay, backoff_step)
from tickwire.client.sequence import SequenceTracker, Verdict


def test_backoff_steps_double_to_sixteen_then_cap_at_thirty():
    assert [backoff_step(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_backoff_is_full_jitter_scaled_by_the_interval():
    assert backoff_delay(3, 0.5, uniform=lambda lo, hi: hi) == 2.0
    assert backoff_delay(3, 0.5, uniform=lambda lo, hi: lo) == 0.0
    assert backoff_delay(12, 2.0, uniform=lambda lo, hi: hi) == 60.0


def test_sequence_tracker_drops_old_notices_gaps_and_follows_new_epochs():
    tracker = SequenceTracker()
    assert tracker.accept("AAPL", 5, "e1") is Verdict.NEXT
    assert tracker.accept("AAPL", 6, "e1") is Verdict.NEXT
    assert tracker.accept("AAPL", 6, "e1") is Verdict.STALE
    assert tracker.accept("AAPL", 4, "e1") is Verdict.STALE
    assert tracker.accept("AAPL", 9, "e1") is Verdict.GAP
    assert tracker.accept("AAPL", 1, "e2") is Verdict.NEXT
    tracker.forget("AAPL")
    assert tracker.accept("AAPL", 1, "e1") is Verdict.NEXT


def test_rest_base_is_derived_from_the_socket_url():
    assert ClientConfig(url="ws://h:8080/ws").rest_base == "http://h:8080"
    assert ClientConfig(url="wss://q.example/ws").rest_base == "https://q.example"
    assert ClientConfig(url="ws://h/ws", fallback_url="http://x:1/").rest_base == "http://x:1"
    with pytest.raises(ValueError):
        ClientConfig(url="http://h/ws")


async def test_actions_made_offline_queue_up_to_the_limit():
    client = TickwireClient(ClientConfig(url="ws://127.0.0.1:9/ws", message_queue_size=2))
    assert client.state is ConnectionState.CLOSED and client.status is ConnectionStatus.OFFLINE
    await client.subscribe(["aapl", "MSFT"])
    await client.unsubscribe(["MSFT"])
    assert client.active_subscriptions() == {"AAPL"}
    with pytest.raises(QueueFull):
        await client.subscribe(["NVDA"])
    assert client.active_subscriptions() == {"AAPL"}  # a refused action changes nothing
    with pytest.raises(ValueError):
        await client.subscribe(["not a symbol"])
