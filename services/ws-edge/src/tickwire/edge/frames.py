"""Encode once, send many: the frames of one tick, built lazily per wire format and
shared by every connection that receives it."""

from __future__ import annotations

import struct

import orjson

from tickwire.core.codecs import encode_msgpack
from tickwire.core.models import Tick, price_update_message


class TickFrames:
    """Plain lazy attributes rather than functools.cached_property, which takes a lock on
    every first access in Python 3.11: this object is built once per tick."""

    __slots__ = ("tick", "mark", "written", "_message", "_json", "_msgpack", "_ws_text",
                 "_ws_binary")

    def __init__(self, tick: Tick):
        self.tick = tick
        self.mark = (tick.epoch, tick.seq)  # what each watcher records as last offered
        self.written = False  # set by the tick's first write on this edge (its latency)
        self._message: dict | None = None
        self._json: bytes | None = None
        self._msgpack: bytes | None = None
        self._ws_text: bytes | None = None
        self._ws_binary: bytes | None = None

    @property
    def message(self) -> dict:
        if self._message is None:
            self._message = price_update_message(self.tick)
        return self._message

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


def websocket_frame(payload: bytes, binary: bool) -> bytes:
    """An unmasked, uncompressed, final server frame (RFC 6455 §5.2)."""
    head = 0x82 if binary else 0x81
    size = len(payload)
    if size < 126:
        return struct.pack("!BB", head, size) + payload
    if size < 65536:
        return struct.pack("!BBH", head, 126, size) + payload
    return struct.pack("!BBQ", head, 127, size) + payload
