"""`GET /api/stream?symbols=A,B`: the one-way fallback over Server-Sent Events.

An SSE stream is a subscription like a socket's: same hub, same conflating writer, the
same `price_update` JSON (snapshot first), one event per update.
"""

from __future__ import annotations

import asyncio
import uuid

from aiohttp import web

from tickwire.core.models import ErrorCode, Subscribe, normalise_symbol
from tickwire.core.service import error_response
from tickwire.edge.admission import Refused
from tickwire.edge.connection import subscribe
from tickwire.edge.node import EdgeNode
from tickwire.edge.session import Session
from tickwire.edge.sinks import SseSink


async def stream(request: web.Request, node: EdgeNode) -> web.StreamResponse:
    raw = [s for s in request.query.get("symbols", "").split(",") if s.strip()]
    symbols = list(dict.fromkeys(filter(None, map(normalise_symbol, raw))))
    if not raw or len(symbols) != len(set(s.strip().upper() for s in raw)):
        return error_response(400, str(ErrorCode.INVALID_SYMBOL), "give valid ?symbols=A,B")
    try:
        address, principal = node.admission.admit(request)
    except Refused as refused:
        return refused.response
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # ingress-nginx: do not buffer the stream
    })
    try:
        await response.prepare(request)
    except BaseException:
        node.admission.release(address)
        raise
    sink = SseSink(response, request.transport)
    session = Session(uuid.uuid4().hex, sink, max_symbols=principal.max_symbols, address=address)
    node.track(session, "sse")
    try:
        await subscribe(node, session, Subscribe(symbols), ack=False)
        # aiohttp does not cancel a handler whose client left; look at the transport.
        while not sink.done.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                break
            try:
                await asyncio.wait_for(sink.done.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
    finally:
        await node.untrack(session, "sse")
    return response
