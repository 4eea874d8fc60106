"""The checks RFC 6455 asks of a server that aiohttp's frame reader leaves out.

aiohttp accepts unmasked client frames (§5.1: the server MUST close), replies 1000 to a
close frame whose code may not be sent on the wire (1004–1006, 1015, 1016–2999 and
≥ 5000; §7.4), and closes with 1000 when a permessage-deflate payload does not inflate.
`StrictWebSocketResponse` puts a small scanner in front of aiohttp's reader: it walks
frame headers only (payload bytes are skipped, never copied) and fails the connection
with 1002 on the first violation; an undecodable compressed payload fails it with 1007.

Cost: a few integer operations per client frame, nothing per byte; server → client
traffic is untouched.
"""

from __future__ import annotations

from aiohttp import WSCloseCode, web
from aiohttp.http_websocket import WebSocketError

_OP_CLOSE = 0x8
# Codes an endpoint may send (IANA registry, RFC 6455 §7.4): 1000–1003, 1007–1014, 3000–4999.
_SENDABLE = frozenset(range(1000, 1004)) | frozenset(range(1007, 1015)) | frozenset(range(3000, 5000))


def close_code_is_valid(code: int) -> bool:
    return code in _SENDABLE


class FrameScanner:
    """Follows frame boundaries across chunks; `feed` returns a violation or None."""

    __slots__ = ("_head", "_skip", "_close", "_close_mask", "_close_bytes")

    def __init__(self) -> None:
        self._head = bytearray()   # a frame header not yet complete
        self._skip = 0             # payload bytes of the current frame still to pass
        self._close = False        # the current frame is a close frame: read its code
        self._close_mask = b""
        self._close_bytes = bytearray()

    def feed(self, data: bytes) -> str | None:
        view = memoryview(data)
        pos, end = 0, len(data)
        while pos < end:
            if self._skip:
                take = min(self._skip, end - pos)
                if self._close and len(self._close_bytes) < 2:
                    self._close_bytes += view[pos:pos + min(take, 2 - len(self._close_bytes))]
                    if len(self._close_bytes) == 2 and (problem := self._check_close()):
                        return problem
                self._skip -= take
                pos += take
                continue
            need = self._header_size()
            if len(self._head) < need:
                grab = min(need - len(self._head), end - pos)
                self._head += view[pos:pos + grab]
                pos += grab
                need = self._header_size()
                if len(self._head) < need:
                    continue
            problem = self._start_frame()
            if problem:
                return problem
        return None

    def _header_size(self) -> int:
        head = self._head
        if len(head) < 2:
            return 2
        length = head[1] & 0x7F
        extended = 2 if length == 126 else 8 if length == 127 else 0
        return 2 + extended + (4 if head[1] & 0x80 else 0)

    def _start_frame(self) -> str | None:
        head = self._head
        if not head[1] & 0x80:
            return "client frames must be masked"
        length = head[1] & 0x7F
        if length == 126:
            length = int.from_bytes(head[2:4], "big")
        elif length == 127:
            length = int.from_bytes(head[2:10], "big")
        self._close = head[0] & 0x0F == _OP_CLOSE
        self._close_mask = bytes(head[-4:])
        self._close_bytes.clear()
        self._skip = length
        self._head = bytearray()
        return None

    def _check_close(self) -> str | None:
        mask = self._close_mask
        code = ((self._close_bytes[0] ^ mask[0]) << 8) | (self._close_bytes[1] ^ mask[1])
        return None if close_code_is_valid(code) else f"invalid close code {code}"


class _StrictReader:
    """aiohttp's reader behind the scanner; same `feed_data` / `feed_eof` contract."""

    __slots__ = ("_inner", "_queue", "_scanner", "_failed")

    def __init__(self, inner, queue) -> None:
        self._inner = inner
        self._queue = queue
        self._scanner = FrameScanner()
        self._failed = False

    def feed_eof(self) -> None:
        self._inner.feed_eof()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self._failed:
            return True, b""
        if problem := self._scanner.feed(data):
            return self._fail(WSCloseCode.PROTOCOL_ERROR, problem)
        return self._inner.feed_data(data)

    def _fail(self, code: int, reason: str) -> tuple[bool, bytes]:
        self._failed = True
        self._queue.set_exception(WebSocketError(code, reason))
        return True, b""


class StrictWebSocketResponse(web.WebSocketResponse):
    """A WebSocketResponse whose reader enforces masking, close codes and inflation."""

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"",
                    drain: bool = True) -> bool:
        # aiohttp turns every refusal it knows into a WebSocketError; any other error
        # from its reader is a payload its inflater could not read, which it would
        # answer with a normal close.
        error = self.exception()
        if code == WSCloseCode.OK and error is not None and not isinstance(error, WebSocketError):
            code = WSCloseCode.INVALID_TEXT
        return await super().close(code=code, message=message, drain=drain)

    def _post_start(self, request: web.BaseRequest, protocol, writer) -> None:
        # Bytes that came with the upgrade request are fed at parser installation:
        # hold them back so they pass the scanner too.
        transport_protocol = request.protocol
        tail = transport_protocol._message_tail
        transport_protocol._message_tail = b""
        super()._post_start(request, protocol, writer)
        strict = _StrictReader(transport_protocol._payload_parser, self._reader)
        transport_protocol._payload_parser = strict
        if tail:
            eof, _ = strict.feed_data(tail)
            if eof:
                transport_protocol.close()
