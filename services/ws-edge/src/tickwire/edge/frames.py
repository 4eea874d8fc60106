"""Encode once, send many: the frames of one tick, built lazily per wire format and
shared by every connection that receives it."""

from __future__ import annotations

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
