"""The tick head the publish script completes: with seq and epoch appended as the script
appends them, it is the tick's msgpack map."""

import msgpack

from tickwire.core.models import StockQuote, Tick
from tickwire.ingestor.publisher import _draft, _head


def quote() -> StockQuote:
    return StockQuote(symbol="AAPL", price=191.25, change=-0.5, change_percent=-0.26,
                      volume=12_345_678, high=192.0, low=190.5, open=191.0, previous_close=191.75,
                      timestamp="2024-01-10T10:30:00.123Z", source="finnhub-stream")


def completed(head: bytes, seq: int, epoch: str) -> bytes:
    """What the script publishes: head .. cmsgpack.pack('seq') .. seq .. 'epoch' .. epoch."""
    return head + b"".join(msgpack.packb(v) for v in ("seq", seq, "epoch", epoch))


def test_the_completed_head_is_the_ticks_wire_map_with_and_without_a_traceparent():
    for parent in (None, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"):
        draft = _draft(quote(), parent)
        payload = msgpack.unpackb(completed(_head(draft), 7, "ab12cd34"))
        expected = Tick(draft.symbol, draft.data, 7, "ab12cd34", draft.published_at, parent)
        assert payload == expected.to_wire()
        assert Tick.from_wire(payload) == expected
