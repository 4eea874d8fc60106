"""Operator messages on the control channel: `{"type": "pause"|"resume"|"drain",
"edge": id | "*"}`, as msgpack or JSON.

Guarantee: `parse_control` names the action only for a well-formed message addressed to
one of this edge's ids (its own; a worker also answers to its pod's) or to every edge;
anything else is None, never an exception.
"""

from __future__ import annotations

import orjson

from tickwire.core.codecs import DecodeError, decode_msgpack

ACTIONS = ("pause", "resume", "drain")


def parse_control(payload: bytes, *edge_ids: str) -> str | None:
    try:
        message = decode_msgpack(payload)
    except DecodeError:
        try:
            message = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
    if not isinstance(message, dict) or message.get("edge") not in ("*", *edge_ids):
        return None
    kind = message.get("type")
    return kind if kind in ACTIONS else None
