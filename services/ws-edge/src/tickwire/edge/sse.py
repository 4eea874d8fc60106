"""The `GET /api/stream?symbols=A,B` transport: the one-way fallback over Server-Sent Events.

Guarantees: an SSE stream is a subscription like a socket's (the same commands, hub and
conflating writer, the same `price_update` JSON, snapshot first, one event per update);
it is released once, when the client leaves or the edge closes it.

Entitlements: 403 FORBIDDEN (naming them) when the token allows none of the symbols;
otherwise the stream opens and the forbidden ones get one FORBIDDEN `error` event, as a
socket's subscribe would. A stream whose token lapses gets an UNAUTHORIZED `error` event
and ends (there is no refresh on SSE: reconnect with a new token).
"""

from __future__ import annotations


from aiohttp import web

from tickwire.core.models import ErrorCode, Subscribe
from tickwire.core.service import error_response
from tickwire.edge.admission import Refused, forbidden_response
from tickwire.edge.commands import parse_symbols_query
from tickwire.edge.node import EdgeNode
from tickwire.edge.transport import SseSink


async def stream(request: web.Request, node: EdgeNode) -> web.StreamResponse:
    symbols, invalid, _ = parse_symbols_query(request.query.get("symbols", ""))
    if not symbols or invalid:
        return error_response(400, str(ErrorCode.INVALID_SYMBOL), "give valid ?symbols=A,B")
    try:
        address, principal = node.admission.admit(request)
    except Refused as refused:
        return refused.response
    allowed, forbidden = principal.entitlements.split(symbols)
    if not allowed:
        node.admission.release(address, principal.subject)
        return forbidden_response(forbidden)
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # ingress-nginx: do not buffer the stream
    })
    try:
        await response.prepare(request)
    except BaseException:
        node.admission.release(address, principal.subject)
        raise
    sink = SseSink(response, request.transport)
    session = node.open_session(sink, "sse", address, principal)
    try:
        await node.commands.subscribe(session, Subscribe(symbols), ack=False)
        await sink.done.wait()  # the client left, a write failed, or the edge closed it
    finally:
        await node.untrack(session, "sse")
    return response
