"""A hand-rolled WebSocket client over a plain socket, for clients that misbehave on
purpose (one that stops reading, with a tiny receive buffer)."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct


class RawWebSocket:
    def __init__(self, port: int, receive_buffer: int = 4096):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.decode(errors="replace"))

    def send_json(self, message: dict) -> None:
        payload = json.dumps(message).encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        if len(payload) < 126:
            header = struct.pack("!BB", 0x81, 0x80 | len(payload))
        else:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, len(payload))
        self.sock.sendall(header + mask + masked)

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
