"""Names keep every multi-key operation in one Redis Cluster slot; the slot map parses."""

import pytest
from redis.crc import key_slot

from tickwire.core import names
from tickwire.core.shardedbus import parse_shards


def slot(name: str) -> int:
    return key_slot(name.encode())


@pytest.mark.parametrize("symbol", ["AAPL", "BRK.B", "NSE:TCS", "X_1-2"])
def test_a_symbols_channel_quote_and_counter_share_its_slot(symbol):
    assert slot(names.tick_channel(symbol)) == slot(names.quote_key(symbol)) \
        == slot(names.seq_key(symbol)) == slot(symbol)
    assert names.symbol_from_channel(names.tick_channel(symbol)) == symbol


def test_all_registry_state_shares_one_slot():
    keys = [names.ACTIVE_SYMBOLS_KEY, names.EDGES_KEY, names.REGISTRY_OUTBOX_KEY,
            names.REGISTRY_LEADER_KEY, names.REGISTRY_PROGRESS_KEY, names.symbol_edges_key("AAPL"),
            names.edge_symbols_key("edge-1"), names.edge_lease_key("edge-1"),
            names.edge_stamps_key("edge-1"), names.edge_down_key("edge-1")]
    assert {slot(k) for k in keys} == {slot("registry")}


def test_the_slot_map_names_each_ranges_healthy_primary():
    shards = [
        {"slots": [0, 5460], "nodes": [
            {b"role": b"replica", b"health": b"online", b"endpoint": b"10.0.0.4", b"port": 7004},
            {b"role": b"master", b"health": b"online", b"endpoint": b"10.0.0.1", b"port": 7001}]},
        {"slots": [5461, 10922, 16000, 16383], "nodes": [
            {b"role": b"master", b"health": b"online", b"endpoint": b"10.0.0.2", b"port": 7002}]},
        # Mid-failover: no healthy primary yet, so the range is served by nobody for now.
        {"slots": [10923, 15999], "nodes": [
            {b"role": b"master", b"health": b"failed", b"endpoint": b"10.0.0.3", b"port": 7003}]},
    ]
    assert parse_shards(shards) == [(0, 5460, ("10.0.0.1", 7001)),
                                    (5461, 10922, ("10.0.0.2", 7002)),
                                    (16000, 16383, ("10.0.0.2", 7002))]
