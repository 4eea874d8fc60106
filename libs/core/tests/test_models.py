import math
import random
from datetime import datetime, timezone

import pytest

from tickwire.core.models import (ErrorCode, InvalidQuote, Ping, ProtocolError, Refresh, StockQuote,
                                  Subscribe, Tick, Unsubscribe, iso_from_unix, normalise_symbol,
                                  parse_client_message, price_update_message)


@pytest.mark.parametrize("raw, expected", [
    ("AAPL", "AAPL"), ("aapl", "AAPL"), (" msft ", "MSFT"), ("BRK.B", "BRK.B"),
    ("NSE:TCS", "NSE:TCS"), ("A_1-2", "A_1-2"), ("X" * 20, "X" * 20),
    ("X" * 21, None), (".AAPL", None), ("", None), ("A B", None), ("$", None),
    (None, None), (42, None), (["AAPL"], None),
])
def test_normalise_symbol(raw, expected):
    assert normalise_symbol(raw) == expected


def test_subscribe_splits_valid_from_invalid_and_keeps_order():
    message = parse_client_message({"action": "subscribe", "symbols": ["msft", "bad one", "AAPL",
                                                                       "MSFT", 7],
                                    "clientId": "ignored", "maxHz": 2})
    assert message == Subscribe(["MSFT", "AAPL"], ["bad one", "7"], 2.0)


@pytest.mark.parametrize("frame, code", [
    ([], ErrorCode.INVALID_MESSAGE),
    ({}, ErrorCode.INVALID_MESSAGE),
    ({"action": 1}, ErrorCode.INVALID_MESSAGE),
    ({"action": "trade"}, ErrorCode.UNSUPPORTED_ACTION),
    ({"action": "refresh"}, ErrorCode.INVALID_MESSAGE),
    ({"action": "refresh", "token": ""}, ErrorCode.INVALID_MESSAGE),
    ({"action": "refresh", "token": 7}, ErrorCode.INVALID_MESSAGE),
    ({"action": "subscribe"}, ErrorCode.INVALID_MESSAGE),
    ({"action": "subscribe", "symbols": []}, ErrorCode.INVALID_MESSAGE),
    ({"action": "subscribe", "symbols": "AAPL"}, ErrorCode.INVALID_MESSAGE),
    ({"action": "subscribe", "symbols": ["A"], "maxHz": 0}, ErrorCode.INVALID_MESSAGE),
    ({"action": "subscribe", "symbols": ["A"], "maxHz": math.inf}, ErrorCode.INVALID_MESSAGE),
    ({"action": "subscribe", "symbols": ["A"], "maxHz": False}, ErrorCode.INVALID_MESSAGE),
    ({"action": "unsubscribe", "symbols": None}, ErrorCode.INVALID_MESSAGE),
])
def test_rejected_messages_carry_their_code(frame, code):
    with pytest.raises(ProtocolError) as error:
        parse_client_message(frame)
    assert error.value.code == code


def test_ping_and_unsubscribe():
    assert parse_client_message({"action": "ping", "timestamp": "t"}) == Ping("t")
    assert parse_client_message({"action": "ping"}) == Ping(None)
    assert parse_client_message({"action": "ping", "timestamp": "x" * 64}) == Ping("x" * 64)
    assert parse_client_message({"action": "unsubscribe", "symbols": ["a"]}) == Unsubscribe(["A"])
    assert parse_client_message({"action": "refresh", "token": "t.o.k"}) == Refresh("t.o.k")


@pytest.mark.parametrize("timestamp", ["x" * 65, 17, 1.5, True, [], {"a": 1}, [[[[]]]]])
def test_ping_timestamps_are_short_strings(timestamp):
    """The pong echoes the timestamp: a large one would park memory in the edge's queue,
    a nested one could not be re-encoded (#19 items 4 and 5)."""
    with pytest.raises(ProtocolError) as error:
        parse_client_message({"action": "ping", "timestamp": timestamp})
    assert error.value.code == ErrorCode.INVALID_MESSAGE




def quote(**changes) -> StockQuote:
    fields = dict(symbol="AAPL", price=190.5, change=1.5, change_percent=0.79, volume=1000,
                  high=191.0, low=189.0, open=189.5, previous_close=189.0,
                  timestamp="2024-01-10T10:30:00.000Z", source="test")
    return StockQuote(**{**fields, **changes})


@pytest.mark.parametrize("bad", [dict(price=0), dict(price=-1), dict(price=math.nan),
                                 dict(high=math.inf), dict(volume=-5)])
def test_junk_quotes_are_refused(bad):
    with pytest.raises(InvalidQuote):
        quote(**bad)


def test_quote_wire_is_camel_case_and_round_trips():
    wire = quote().to_wire()
    assert set(wire) == {"symbol", "price", "change", "changePercent", "volume", "high", "low",
                         "open", "previousClose", "timestamp", "source"}
    assert StockQuote.from_wire(wire) == quote()
    assert quote().same_market_state(quote(timestamp="later"))
    assert not quote().same_market_state(quote(price=190.6))
    for field, value in (("volume", 1), ("high", 999.0), ("low", 1.0), ("open", 2.0),
                         ("previous_close", 3.0)):
        assert not quote().same_market_state(quote(**{field: value})), field
    assert not quote().same_market_state(None)


def test_iso_from_unix_reads_as_datetime_does_across_seconds():
    def by_datetime(seconds: float) -> str:
        moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    rng = random.Random(15)
    moments = [1704882600.123, 1704882600.9999995, 1704882600.9999994, 1704882601.0, 0.0, 0.5,
               -0.5, -1.0000004, -86400.25,
               *(rng.randint(1_600_000_000_000, 1_800_000_000_000) / 1000 for _ in range(2000)),
               *(rng.uniform(0, 2e9) for _ in range(2000))]
    for seconds in sorted(moments) + moments:  # in order (the cache hits) and not
        assert iso_from_unix(seconds) == by_datetime(seconds), seconds
    assert iso_from_unix(1704882600.123) == "2024-01-10T10:30:00.123Z"


def test_tick_order_within_and_across_epochs():
    tick = Tick("AAPL", quote().to_wire(), seq=5, epoch="a", published_at=1)
    assert tick.is_newer_than("a", 4) and not tick.is_newer_than("a", 5)
    assert not tick.is_newer_than("a", 6) and tick.is_newer_than("b", 99)
    assert Tick.from_wire(tick.to_wire()) == tick


def test_price_update_marks_snapshots_only():
    tick = Tick("AAPL", quote().to_wire(), seq=5, epoch="a", published_at=1)
    assert "snapshot" not in price_update_message(tick)
    assert price_update_message(tick, snapshot=True)["snapshot"] is True
