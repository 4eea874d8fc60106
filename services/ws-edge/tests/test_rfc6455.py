"""The frame scanner in front of aiohttp's reader (pure logic; the integration tests drive
the same checks through a real edge)."""

import os
import struct

import pytest

from tickwire.edge.rfc6455 import FrameScanner, close_code_is_valid


def frame(opcode: int, payload: bytes, masked: bool = True, fin: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, (0x80 if masked else 0) | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, (0x80 if masked else 0) | 126, n)
    else:
        head = struct.pack("!BBQ", first, (0x80 if masked else 0) | 127, n)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def feed_in_pieces(data: bytes, size: int) -> str | None:
    scanner = FrameScanner()
    for start in range(0, len(data), size):
        if problem := scanner.feed(data[start:start + size]):
            return problem
    return None


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000, 1 << 20])
def test_masked_frames_of_every_length_pass_in_any_split(size):
    stream = b"".join([frame(1, b"x" * 5), frame(2, b"y" * 300), frame(1, b"z" * 70000),
                       frame(9, b""), frame(8, struct.pack("!H", 1000) + b"bye")])
    assert feed_in_pieces(stream, size) is None


@pytest.mark.parametrize("size", [1, 5, 1 << 20])
def test_an_unmasked_frame_is_a_violation_wherever_it_falls(size):
    stream = frame(1, b"ok" * 100) + frame(1, b"unmasked", masked=False)
    assert "masked" in feed_in_pieces(stream, size)


@pytest.mark.parametrize("code,valid", [(1000, True), (1001, True), (1003, True), (1004, False),
                                        (1005, False), (1006, False), (1007, True), (1011, True),
                                        (1014, True), (1015, False), (2999, False), (3000, True),
                                        (4999, True), (5000, False), (65535, False), (999, False)])
def test_close_codes(code, valid):
    assert close_code_is_valid(code) is valid
    problem = feed_in_pieces(frame(8, struct.pack("!H", code)), 1)
    assert (problem is None) is valid
