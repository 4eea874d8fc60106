"""The per-connection writer, with a recording sink standing in for the socket."""

import asyncio
import time
import zlib

import orjson
import pytest

from tickwire.core.models import Tick
from tickwire.edge.frames import TickFrames, websocket_frame
from tickwire.edge.session import FLUSH_BUDGET, Session
from tickwire.edge.transport import PING_FRAME

from edge_fakes import LoopPasses, RecordingSink, settle, updates


def tick(symbol: str, seq: int, epoch: str = "e") -> Tick:
    return Tick(symbol, {"symbol": symbol, "price": float(seq)}, seq, epoch, 0)


def offer(session: Session, update: Tick, snapshot: bool = False) -> bool:
    return session.offer(update, TickFrames(update, snapshot=snapshot))


def watching(session: Session, *symbols: str) -> Session:
    """As the hub does on a subscribe."""
    for symbol in symbols or ("A", "B"):
        session.watch(symbol)
    return session


@pytest.fixture
async def session():
    session = watching(Session("c1", RecordingSink()))
    yield session
    await session.stop()


async def test_control_messages_go_before_updates_offered_after_them(session):
    session.send({"type": "subscribed", "symbols": ["A"]})
    session.offer(tick("A", 1), TickFrames(tick("A", 1)))
    await settle()
    assert [f["type"] for f in session.sink.frames] == ["subscribed", "price_update"]


async def test_a_burst_is_delivered_in_full_while_the_writer_keeps_up(session):
    for seq in range(1, 6):
        offer(session, tick("A", seq))
    await settle()
    assert updates(session.sink.frames) == [("A", s) for s in range(1, 6)]
    assert session.sink.frames[0]["type"] == "batch_update"


async def test_a_blocked_client_is_conflated_to_the_newest_per_symbol(session):
    session.sink.gate.clear()  # the peer stops reading
    offer(session, tick("A", 1))
    await settle()  # the writer is now waiting on the peer
    assert session.blocked_since is not None
    for seq in range(2, 50):
        offer(session, tick("A", seq))
        offer(session, tick("B", seq))
    assert session.pending_updates == 2
    session.sink.gate.set()
    await settle()
    assert updates(session.sink.frames) == [("A", 1), ("A", 49), ("B", 49)]


async def test_the_queue_limit_bounds_memory_even_when_the_writer_is_free():
    session = watching(Session("c2", RecordingSink(), queue_limit=4))
    for seq in range(1, 20):
        offer(session, tick("A", seq))
    assert session.pending_updates <= 4
    await session.stop()


async def test_duplicates_and_old_seqs_are_dropped_new_epochs_followed(session):
    assert offer(session, tick("A", 5))
    assert not offer(session, tick("A", 5))
    assert not offer(session, tick("A", 4))
    assert offer(session, tick("A", 1, epoch="f"))
    await settle()
    assert updates(session.sink.frames) == [("A", 5), ("A", 1)]


async def test_snapshot_flag_and_forget(session):
    offer(session, tick("A", 3), snapshot=True)
    await settle()
    assert session.sink.frames[-1]["snapshot"] is True
    session.unwatch("A")  # an unsubscribe, as the hub does it
    assert not offer(session, tick("A", 4))  # not watched: not sent
    session.watch("A")
    assert offer(session, tick("A", 3))  # after an unsubscribe the symbol starts afresh


async def test_a_resubscribe_keeps_what_the_client_was_sent(session):
    offer(session, tick("A", 3))
    session.watch("A")
    assert not offer(session, tick("A", 3))


def writers() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("writer-") and not t.done()]


async def test_an_idle_session_holds_no_writer_task(session):
    assert writers() == []
    session.send({"type": "subscribed", "symbols": ["A"]})
    offer(session, tick("A", 1))
    assert len(writers()) == 1
    await settle()
    assert writers() == []  # ended with the queue
    session.queue_ping(0.0)  # the next message starts another
    await settle()
    assert [f["type"] for f in session.sink.frames] == ["subscribed", "price_update", "<ping>"]
    assert writers() == []


async def test_a_failed_write_ends_writing_to_that_client(session):
    async def gone(frame: bytes) -> None:
        raise ConnectionResetError("peer gone")

    session.sink.write = gone
    session.send({"type": "subscribed", "symbols": ["A"]})
    await settle()
    assert session.sink.closed  # told the sink
    offer(session, tick("A", 1))
    await settle()
    assert session.sink.frames == [] and session.pending_updates == 1  # nothing retried


async def test_max_hz_sends_the_newest_value_at_most_that_often(session):
    session.set_max_hz(["A"], 10.0)
    offer(session, tick("A", 1))
    await settle()
    for seq in range(2, 6):
        offer(session, tick("A", seq))
    await settle()
    assert updates(session.sink.frames) == [("A", 1)]  # held back until due
    async with asyncio.timeout(10):
        while len(updates(session.sink.frames)) < 2:
            await asyncio.sleep(0.01)
    assert updates(session.sink.frames) == [("A", 1), ("A", 5)]


async def test_pings_are_written_by_the_writer(session):
    session.queue_ping(0.0)
    await settle()
    assert session.sink.frames == [{"type": "<ping>"}]


class DirectSink(RecordingSink):
    """A socket without compression: pre-built frames may be written at once."""

    direct = True

    def __init__(self):
        super().__init__()
        self.room = True
        self.batches: list[list[bytes]] = []

    def can_write_now(self) -> bool:
        return self.room

    def write_now(self, frames: bytes | list[bytes]) -> None:
        self.batches.append([frames] if isinstance(frames, bytes) else frames)

    def prebuilt(self, payload: bytes) -> bytes:
        return websocket_frame(payload, self.binary)

    def prebuilt_ping(self) -> bytes:
        return PING_FRAME


def payload_of(frame: bytes) -> dict:
    """The JSON message of one unmasked server frame (RFC 6455 §5.2)."""
    size = frame[1] & 0x7F
    start = 2 if size < 126 else 4 if size == 126 else 10
    return orjson.loads(frame[start:])


async def test_live_updates_of_an_idle_socket_are_coalesced_into_one_write_per_pass():
    sink = DirectSink()
    session = watching(Session("c3", sink))
    try:
        await settle()
        built = [TickFrames(tick("A", seq)) for seq in range(1, 4)]
        for frames in built:
            session.offer(frames.tick, frames)
        assert sink.batches == []  # written when the loop pass is over
        await settle()
        assert sink.batches == [[frames.ws_text for frames in built]]
        assert sink.frames == []  # the writer task was not involved
    finally:
        await session.stop()


class DeflateSink(DirectSink):
    """A socket with permessage-deflate, negotiated without server context takeover."""

    deflate = True


async def test_compressed_sockets_share_one_compressed_frame_per_tick():
    sinks = [DeflateSink() for _ in range(3)]
    sessions = [watching(Session(f"z{i}", sink)) for i, sink in enumerate(sinks)]
    try:
        await settle()
        frames = TickFrames(tick("A", 1))
        for session in sessions:
            session.offer(frames.tick, frames)
        await settle()
        shared = frames.ws_text_deflate
        assert all(sink.batches == [[shared]] for sink in sinks)
        assert all(sink.batches[0][0] is shared for sink in sinks)  # built once, not per socket
        assert shared[0] == 0xC1  # final, RSV1 (compressed), text
        body = shared[2:] + b"\x00\x00\xff\xff"
        assert orjson.loads(zlib.decompressobj(-15).decompress(body)) == orjson.loads(frames.json)
    finally:
        for session in sessions:
            await session.stop()


def test_each_compressed_frame_inflates_without_the_ones_before():
    built = [TickFrames(tick("A", seq)) for seq in range(1, 4)]
    for frames in built:
        body = frames.ws_binary_deflate[2:] + b"\x00\x00\xff\xff"
        assert zlib.decompressobj(-15).decompress(body) == frames.msgpack


async def test_control_messages_and_updates_keep_their_order_on_either_path():
    sink = DirectSink()
    session = watching(Session("c4", sink))
    try:
        await settle()
        session.send({"type": "subscribed", "symbols": ["A"]})  # nothing ahead: the fast path
        session.offer(tick("A", 1), TickFrames(tick("A", 1)))
        await settle()
        assert [[payload_of(f)["type"] for f in batch] for batch in sink.batches] == \
            [["subscribed", "price_update"]]  # one write, in order, no writer task
        assert sink.frames == []
        sink.room = False  # the transport is backed up: the writer (and conflation) take over
        session.send({"type": "pong", "timestamp": "1"})
        session.offer(tick("A", 2), TickFrames(tick("A", 2)))
        await settle()
        assert [f["type"] for f in sink.frames] == ["pong", "price_update"]
        assert updates(sink.frames) == [("A", 2)] and len(sink.batches) == 1
    finally:
        await session.stop()


def test_prebuilt_frames_follow_rfc6455():
    from tickwire.edge.frames import websocket_frame

    assert websocket_frame(b"hi", binary=False) == b"\x81\x02hi"
    assert websocket_frame(b"x" * 200, binary=True)[:4] == b"\x82\x7e\x00\xc8"
    assert websocket_frame(b"x" * 70000, binary=False)[:2] == b"\x81\x7f"


async def test_a_full_control_queue_closes_the_client_instead_of_dropping_a_message():
    overflowed = []
    session = watching(Session("c5", RecordingSink(), control_limit=3,
                               on_overflow=overflowed.append))
    session.sink.gate.clear()  # the peer stops reading
    for n in range(4):
        session.send({"type": "pong", "timestamp": str(n)})
    await settle()
    session.send({"type": "pong", "timestamp": "over"})
    assert overflowed == [session] and session.closed
    session.send({"type": "pong", "timestamp": "after"})  # nothing more is queued
    assert overflowed == [session]
    await session.stop()


async def test_control_queue_bytes_close_the_client_before_the_count_does():
    overflowed = []
    session = watching(Session("c6", RecordingSink(), control_limit=100, control_byte_limit=300,
                               on_overflow=overflowed.append))
    session.sink.gate.clear()  # the peer stops reading
    session.send({"type": "pong", "timestamp": "first"})  # taken by the writer
    await settle()
    for n in range(3):
        session.send({"type": "pong", "timestamp": f"{n}" * 60})
    assert overflowed == []
    session.send({"type": "pong", "timestamp": "x" * 60})  # past 300 bytes queued
    assert overflowed == [session] and session.closed
    await session.stop()


async def test_flush_returns_when_the_writer_has_written_what_was_queued(session):
    session.sink.gate.clear()
    session.send({"type": "reconnect"})
    flushing = asyncio.create_task(session.flush(timeout=30))
    await settle()
    assert not flushing.done()  # waiting on the writer, not on a timer
    session.sink.gate.set()
    await asyncio.wait_for(flushing, 10)
    assert [f["type"] for f in session.sink.frames] == ["reconnect"]


async def test_batch_frames_are_joined_from_the_encoded_entries():
    import msgpack

    from tickwire.core.models import batch_update_message
    from tickwire.edge.frames import batch_json, batch_msgpack

    ticks = [tick(f"S{n}", n) for n in range(20)]
    frames = [TickFrames(t, snapshot=(n == 3)) for n, t in enumerate(ticks)]
    expected = batch_update_message(ticks)
    expected["updates"][3]["snapshot"] = True
    for built in (orjson.loads(batch_json(frames)), msgpack.unpackb(batch_msgpack(frames))):
        assert built["type"] == "batch_update" and built["updates"] == expected["updates"]
        assert isinstance(built["timestamp"], str)
    assert len(msgpack.unpackb(batch_msgpack(frames[:5]))["updates"]) == 5


def test_a_symbol_change_budget_counts_symbols_not_messages():
    session = Session("c6", RecordingSink(), max_symbols=10, change_rate=1.0, change_burst=30.0)
    assert session.take_changes(0.0, 30)
    assert not session.take_changes(0.0, 1)
    assert session.take_changes(2.0, 2)  # refilled at change_rate
    assert session.take_changes(2.0, 0)


async def test_flush_writes_what_the_fast_path_collected_before_a_close():
    sink = DirectSink()
    session = watching(Session("c9", sink))
    await settle()
    session.send({"type": "reconnect", "delayMs": 0})  # collected for the end of the pass
    await session.flush(1.0)
    await session.stop()  # the close right after: nothing collected is left behind
    await settle()
    assert [[payload_of(f)["type"] for f in batch] for batch in sink.batches] == [["reconnect"]]


async def test_an_idle_socket_is_pinged_on_the_fast_path_a_busy_one_in_its_queue():
    sink = DirectSink()
    session = watching(Session("c10", sink))
    await settle()
    session.queue_ping(1.0)
    assert session._writer is None  # no task for a ping to an idle socket
    await settle()
    assert sink.batches == [[PING_FRAME]]
    sink.room = False  # backed up: the ping waits its turn in the writer
    session.queue_ping(2.0)
    await settle()
    assert sink.frames == [{"type": "<ping>"}] and len(sink.batches) == 1
    await session.stop()


class SlowDirectSink(DirectSink):
    """A direct socket whose write takes a tenth of a flush's budget (CPU, not a sleep)."""

    def write_now(self, frames: bytes | list[bytes]) -> None:
        until = time.perf_counter() + FLUSH_BUDGET / 10
        while time.perf_counter() < until:
            pass
        super().write_now(frames)


async def test_a_long_flush_lets_the_loop_run_between_its_parts():
    sessions = [watching(Session(f"s{n}", SlowDirectSink())) for n in range(60)]
    try:
        async with LoopPasses() as passes:
            await settle()
            frames = TickFrames(tick("A", 1))
            written_at: list[int] = []
            for session in sessions:
                session.offer(frames.tick, frames)
                original = session.sink.write_now
                session.sink.write_now = lambda f, original=original: (
                    written_at.append(passes.count), original(f))
            async with asyncio.timeout(10):
                while len(written_at) < len(sessions):
                    await asyncio.sleep(0)
        assert all(session.sink.batches == [[frames.ws_text]] for session in sessions)
        # 60 writes of a tenth of the budget each: at least 5 parts, other work between.
        assert len(set(written_at)) >= 5
    finally:
        for session in sessions:
            await session.stop()


async def test_what_waits_for_the_pass_end_write_is_bounded_like_a_queue():
    sink = DirectSink()
    session = watching(Session("c11", sink, queue_limit=4))
    try:
        await settle()
        for seq in range(1, 11):  # one pass: the first 4 collected, the rest queued
            session.offer(tick("A", seq), TickFrames(tick("A", seq)))
        # ... and the queue conflates past its limit as for any backlog
        assert len(session._direct) == 4 and 0 < session.pending_updates <= 4
        await settle()
        direct = [payload_of(f)["seq"] for batch in sink.batches for f in batch]
        assert direct == [1, 2, 3, 4] and updates(sink.frames)[-1] == ("A", 10)
    finally:
        await session.stop()


class BrokenDirectSink(DirectSink):
    def write_now(self, frames: bytes | list[bytes]) -> None:
        raise ConnectionResetError("peer gone")


async def test_a_failed_pass_end_write_marks_the_peer_gone_and_flush_returns():
    sink = BrokenDirectSink()
    session = watching(Session("c12", sink))
    await settle()
    session.send({"type": "reconnect", "delayMs": 0})
    await session.flush(1.0)  # does not raise
    assert sink.closed  # lost(): the read loop sees the socket end
    await session.stop()
