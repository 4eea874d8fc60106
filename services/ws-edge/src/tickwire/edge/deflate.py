"""permessage-deflate (RFC 7692) negotiated so that one compressed frame fits every socket.

aiohttp answers `server_no_context_takeover` only when the client asks for it, and
browsers do not. RFC 7692 §7.1.1.1 lets the server add it on its own: the edge always
does, so each message it compresses stands alone and the frame compressed once per
tick (`frames.TickFrames.ws_text_deflate`) is valid on every compressed socket, written
to it as-is like the uncompressed frame. Control messages and batches are compressed
on their own the same way (`transport.WebSocketSink.prebuilt`), and so are the large
ones aiohttp's writer still sends (a full flush after each), so all of them interleave
on one socket.

Guarantees: a client that offers permessage-deflate gets it with
`server_no_context_takeover`; one that does not gets no extension.
"""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp._websocket.helpers import ws_ext_gen

SHARED_WINDOW_BITS = 15  # the window the shared frames are compressed with


class SharedDeflateResponse(web.WebSocketResponse):
    """A WebSocketResponse that always answers permessage-deflate without context takeover."""

    def _handshake(self, request: web.BaseRequest):
        headers, protocol, compress, notakeover = super()._handshake(request)
        if compress and not notakeover:
            headers[hdrs.SEC_WEBSOCKET_EXTENSIONS] = ws_ext_gen(
                compress=compress, isserver=True, server_notakeover=True)
            notakeover = True
        return headers, protocol, compress, notakeover


def shares_frames(ws: web.WebSocketResponse) -> bool:
    """Whether pre-built compressed frames may go to this socket: compression with the
    full window (a client that limited `server_max_window_bits` takes aiohttp's path)."""
    return ws.compress == SHARED_WINDOW_BITS
