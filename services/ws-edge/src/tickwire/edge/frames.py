"""Encode once, send many: the frames of one tick, built lazily per wire format and
shared by every connection that receives it."""

from __future__ import annotations

import struct
from functools import cached_property

import orjson

from tickwire.core.codecs import encode_msgpack
from tickwire.core.models import Tick, price_update_message


class TickFrames:
    __slots__ = ("tick", "written", "__dict__")

    def __init__(self, tick: Tick):
        self.tick = tick
        self.written = False  # set by the tick's first write on this edge (its latency)

    @cached_property
    def _message(self) -> dict:
        return price_update_message(self.tick)

    @cached_property
    def json(self) -> bytes:
        return orjson.dumps(self._message)

    @cached_property
    def msgpack(self) -> bytes:
        return encode_msgpack(self._message)

    @cached_property
    def ws_text(self) -> bytes:
        """The whole WebSocket frame (header + JSON), written as-is to every socket."""
        return websocket_frame(self.json, binary=False)

    @cached_property
    def ws_binary(self) -> bytes:
        return websocket_frame(self.msgpack, binary=True)


def websocket_frame(payload: bytes, binary: bool) -> bytes:
    """An unmasked, uncompressed, final server frame (RFC 6455 §5.2)."""
    head = 0x82 if binary else 0x81
    size = len(payload)
    if size < 126:
        return struct.pack("!BB", head, size) + payload
    if size < 65536:
        return struct.pack("!BBH", head, 126, size) + payload
    return struct.pack("!BBQ", head, 127, size) + payload
