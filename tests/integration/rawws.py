"""A hand-rolled WebSocket client over a plain socket, for clients that misbehave on
purpose (one that stops reading, with a tiny receive buffer; frames RFC 6455 forbids)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct


def _masked(payload: bytes, mask: bytes) -> bytes:
    """`payload` XORed with the repeated `mask`, as one big-integer operation (a byte
    loop in Python costs seconds per megabyte)."""
    size = len(payload)
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")


class RawWebSocket:
    def __init__(self, port: int, receive_buffer: int = 4096, extensions: str = ""):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            + (f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else "") + "\r\n"
        ).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.decode(errors="replace"))

    def send_json(self, message: dict) -> None:
        self.send_frame(0x1, json.dumps(message).encode())

    def send_frame(self, opcode: int, payload: bytes, masked: bool = True,
                   rsv1: bool = False) -> None:
        """One final frame, masked as a client must unless told otherwise."""
        first = 0x80 | (0x40 if rsv1 else 0) | opcode
        mask_bit = 0x80 if masked else 0
        if len(payload) < 126:
            header = struct.pack("!BB", first, mask_bit | len(payload))
        elif len(payload) < 65536:
            header = struct.pack("!BBH", first, mask_bit | 126, len(payload))
        else:
            header = struct.pack("!BBQ", first, mask_bit | 127, len(payload))
        if masked:
            mask = os.urandom(4)
            payload = mask + _masked(payload, mask)
        self.sock.sendall(header + payload)

    def _exactly(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise ConnectionError("connection ended mid-frame")
            data += chunk
        return data

    def read_frame(self) -> tuple[int, bytes]:
        """The next (unmasked, unfragmented) server frame: (opcode, payload)."""
        first, second = self._exactly(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._exactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._exactly(8))[0]
        return first & 0x0F, self._exactly(length)

    def close_code(self, timeout: float = 10) -> int | None:
        """The code of the server's close frame (frames before it are skipped); None when
        the connection ends without one."""
        self.sock.settimeout(timeout)
        try:
            while True:
                opcode, payload = self.read_frame()
                if opcode == 0x8:
                    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        except (ConnectionError, OSError):
            return None

    def drain_until_closed(self, limit_bytes: int = 200_000_000) -> int:
        """Read everything until the edge ends the connection; returns bytes read."""
        total = 0
        self.sock.settimeout(30)
        while total < limit_bytes:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return total
            if not chunk:
                return total
            total += len(chunk)
        raise AssertionError("the connection was never closed")

    def close(self) -> None:
        self.sock.close()


async def trickle_upgrade(port: int, max_bytes: int) -> tuple[bytes | None, int]:
    """Send an upgrade request head at 1 byte/s, up to `max_bytes` of it; returns what the
    server answered (b"" when it closed) or None if it was still open, and the bytes sent."""
    head = (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer, sent = None, 0
    try:
        for sent in range(1, min(max_bytes, len(head)) + 1):
            try:
                writer.write(head[sent - 1:sent])
                await writer.drain()
                answer = await asyncio.wait_for(reader.read(4096), timeout=1.0)
                break
            except asyncio.TimeoutError:
                continue
            except ConnectionError:
                answer = b""
                break
    finally:
        writer.close()
    return answer, sent
