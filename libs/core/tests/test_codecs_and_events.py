import pytest

from tickwire.core.codecs import (DecodeError, decode_json, decode_msgpack, decode_tick,
                                  encode_msgpack, encode_tick)
from tickwire.core.events import (ActiveSymbolEvent, EventError, SubscriptionEvent,
                                  SubscriptionEventType)
from tickwire.core.models import Tick


def test_tick_codec_round_trip_and_junk():
    tick = Tick("AAPL", {"symbol": "AAPL", "price": 1.5}, 3, "ep", 1_700_000_000_000_000_000,
                traceparent="00-abc-def-01")
    assert decode_tick(encode_tick(tick)) == tick
    for junk in (b"", b"\xc1", encode_msgpack({"symbol": "AAPL"}), encode_msgpack([1, 2])):
        with pytest.raises(DecodeError):
            decode_tick(junk)


@pytest.mark.parametrize("frame", ["{", "nope", b"\xff\xfe"])
def test_json_errors(frame):
    with pytest.raises(DecodeError):
        decode_json(frame)


@pytest.mark.parametrize("frame", [b"", b"\x81", b"\xc1", encode_msgpack({"a": 1})[:-1],
                                   encode_msgpack({1: 2}) + b"\x00"])
def test_msgpack_errors(frame):
    with pytest.raises(DecodeError):
        decode_msgpack(frame)


def test_subscription_events_round_trip():
    events = [
        SubscriptionEvent(SubscriptionEventType.SUBSCRIBE, "e1", symbol="AAPL", ts=5),
        SubscriptionEvent(SubscriptionEventType.UNSUBSCRIBE, "e1", symbol="AAPL", ts=6),
        SubscriptionEvent(SubscriptionEventType.EDGE_HEARTBEAT, "e1", symbols=("A", "B"), ts=7),
        SubscriptionEvent(SubscriptionEventType.EDGE_DOWN, "e1", ts=8),
    ]
    for event in events:
        assert SubscriptionEvent.decode(event.encode()) == event
    assert events[0].key() == b"AAPL" and events[2].key() == b"e1"


@pytest.mark.parametrize("raw", [
    b"junk", b"[]", b'{"v":2,"type":"subscribe","edgeId":"e","symbol":"A"}',
    b'{"v":1,"type":"nope","edgeId":"e"}', b'{"v":1,"type":"subscribe","symbol":"A"}',
    b'{"v":1,"type":"subscribe","edgeId":"e","symbol":"bad one"}',
    b'{"v":1,"type":"edge_heartbeat","edgeId":"e"}',
])
def test_invalid_subscription_records(raw):
    with pytest.raises(EventError):
        SubscriptionEvent.decode(raw)


def test_active_symbol_event():
    event = ActiveSymbolEvent("AAPL", True, 2, ts=9)
    assert ActiveSymbolEvent.decode(event.encode()) == event
    with pytest.raises(EventError):
        ActiveSymbolEvent.decode(b'{"v":1,"symbol":"AAPL","active":"yes"}')
