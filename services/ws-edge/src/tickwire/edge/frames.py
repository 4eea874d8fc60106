"""Encode once, send many: the frames of one tick, built lazily per wire format and
shared by every connection that receives it.

Guarantees: a tick's `price_update` and its `batch_update` entry are each encoded at
most once per wire format on this edge, however many clients get them; a
`batch_update` frame is the join of those entries, so building one encodes nothing
per update. A snapshot (the cached tick sent after a subscribe) is shared the same way
through `snapshot_frames`.

Compressed sockets share frames too: every socket that negotiated permessage-deflate
was answered with `server_no_context_takeover` (`deflate.SharedDeflateResponse`), so a
message compressed on its own is valid on all of them, and a tick is compressed at
most once per wire format on this edge, not once per socket."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable

import orjson

from tickwire.core.codecs import encode_msgpack
from tickwire.core.models import Tick, iso_now, price_update_message


class TickFrames:
    """Plain lazy attributes rather than functools.cached_property, which takes a lock on
    every first access in Python 3.11: this object is built once per tick."""

    __slots__ = ("tick", "mark", "written", "snapshot", "_message", "_json", "_msgpack",
                 "_ws_text", "_ws_binary", "_ws_text_deflate", "_ws_binary_deflate",
                 "_entry_json", "_entry_msgpack")

    def __init__(self, tick: Tick, snapshot: bool = False):
        self.tick = tick
        self.mark = (tick.epoch, tick.seq)  # what each watcher records as last offered
        # Set by the tick's first write on this edge (its latency); a snapshot's latency
        # is not the feed's, so it counts as written already.
        self.written = snapshot
        self.snapshot = snapshot
        self._message: dict | None = None
        self._json: bytes | None = None
        self._msgpack: bytes | None = None
        self._ws_text: bytes | None = None
        self._ws_binary: bytes | None = None
        self._ws_text_deflate: bytes | None = None
        self._ws_binary_deflate: bytes | None = None
        self._entry_json: bytes | None = None
        self._entry_msgpack: bytes | None = None

    @property
    def message(self) -> dict:
        if self._message is None:
            self._message = price_update_message(self.tick, snapshot=self.snapshot)
        return self._message

    def _entry(self) -> dict:
        tick = self.tick
        entry = {"symbol": tick.symbol, "data": tick.data, "seq": tick.seq, "epoch": tick.epoch}
        if self.snapshot:
            entry["snapshot"] = True
        return entry

    @property
    def entry_json(self) -> bytes:
        """This tick as one element of a `batch_update`'s `updates`, JSON."""
        if self._entry_json is None:
            self._entry_json = orjson.dumps(self._entry())
        return self._entry_json

    @property
    def entry_msgpack(self) -> bytes:
        if self._entry_msgpack is None:
            self._entry_msgpack = encode_msgpack(self._entry())
        return self._entry_msgpack

    @property
    def json(self) -> bytes:
        if self._json is None:
            self._json = orjson.dumps(self.message)
        return self._json

    @property
    def msgpack(self) -> bytes:
        if self._msgpack is None:
            self._msgpack = encode_msgpack(self.message)
        return self._msgpack

    @property
    def ws_text(self) -> bytes:
        """The whole WebSocket frame (header + JSON), written as-is to every socket."""
        if self._ws_text is None:
            self._ws_text = websocket_frame(self.json, binary=False)
        return self._ws_text

    @property
    def ws_binary(self) -> bytes:
        if self._ws_binary is None:
            self._ws_binary = websocket_frame(self.msgpack, binary=True)
        return self._ws_binary

    @property
    def ws_text_deflate(self) -> bytes:
        """The whole compressed WebSocket frame (RSV1 set), for every deflate socket."""
        if self._ws_text_deflate is None:
            self._ws_text_deflate = websocket_frame(deflated(self.json), binary=False,
                                                    compressed=True)
        return self._ws_text_deflate

    @property
    def ws_binary_deflate(self) -> bytes:
        if self._ws_binary_deflate is None:
            self._ws_binary_deflate = websocket_frame(deflated(self.msgpack), binary=True,
                                                      compressed=True)
        return self._ws_binary_deflate


# The pre-built frame a socket gets, by (binary, deflate): the property getters, so
# choosing costs a socket nothing more than reading the attribute would.
FRAME_FOR = {
    (False, False): TickFrames.ws_text.fget,
    (True, False): TickFrames.ws_binary.fget,
    (False, True): TickFrames.ws_text_deflate.fget,
    (True, True): TickFrames.ws_binary_deflate.fget,
}


_SNAPSHOTS: dict[str, TickFrames] = {}


def snapshot_frames(tick: Tick) -> TickFrames:
    """The shared snapshot frames of `tick`: every client that subscribes while it is
    the cached quote gets the same bytes. One entry per symbol with a cached tick."""
    frames = _SNAPSHOTS.get(tick.symbol)
    if frames is None or (frames.tick is not tick and frames.mark != (tick.epoch, tick.seq)):
        frames = _SNAPSHOTS[tick.symbol] = TickFrames(tick, snapshot=True)
    return frames


_JSON_BATCH_HEAD = b'{"type":"batch_update","updates":['
_MSGPACK_BATCH_HEAD = b"\x83" + encode_msgpack("type") + encode_msgpack("batch_update") + \
    encode_msgpack("updates")
_MSGPACK_TIMESTAMP = encode_msgpack("timestamp")


def batch_json(frames: Iterable[TickFrames]) -> bytes:
    """A `batch_update` (JSON) joined from the ticks' encoded entries."""
    return b"".join((_JSON_BATCH_HEAD, b",".join([f.entry_json for f in frames]),
                     b'],"timestamp":', orjson.dumps(iso_now()), b"}"))


def batch_msgpack(frames: list[TickFrames]) -> bytes:
    """A `batch_update` (msgpack) joined from the ticks' encoded entries."""
    count = len(frames)
    if count < 16:
        head = bytes((0x90 | count,))
    elif count < 65536:
        head = struct.pack("!BH", 0xDC, count)
    else:
        head = struct.pack("!BI", 0xDD, count)
    return b"".join((_MSGPACK_BATCH_HEAD, head, *[f.entry_msgpack for f in frames],
                     _MSGPACK_TIMESTAMP, encode_msgpack(iso_now())))


# One raw-deflate stream for the whole edge (RFC 7692 §7.2.1). A full flush after each
# message empties its history, so no message refers to another: what a socket that
# negotiated `server_no_context_takeover` may receive. Reused rather than made per tick,
# because making one allocates its ~260 KiB of tables.
_DEFLATE = zlib.compressobj(wbits=-zlib.MAX_WBITS)
_DEFLATE_TAIL = b"\x00\x00\xff\xff"


def deflated(payload: bytes) -> bytes:
    """`payload` as one self-contained permessage-deflate message body."""
    data = _DEFLATE.compress(payload) + _DEFLATE.flush(zlib.Z_FULL_FLUSH)
    return data[:-4] if data.endswith(_DEFLATE_TAIL) else data


def websocket_frame(payload: bytes, binary: bool, compressed: bool = False) -> bytes:
    """An unmasked, final server frame (RFC 6455 §5.2); RSV1 marks a compressed one."""
    head = (0x82 if binary else 0x81) | (0x40 if compressed else 0)
    size = len(payload)
    if size < 126:
        return struct.pack("!BB", head, size) + payload
    if size < 65536:
        return struct.pack("!BBH", head, 126, size) + payload
    return struct.pack("!BBQ", head, 127, size) + payload
