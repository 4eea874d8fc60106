"""Through the `make run` HAProxy config (tickwire.localstack.start_haproxy): a forged
X-Forwarded-For does not escape the edge's per-address cap (#19, item 2), and a request
head trickled at 1 byte/s is cut off (#19, item 7)."""

from __future__ import annotations


import aiohttp
import pytest

from integration.rawws import trickle_upgrade
from integration.wsclient import WsClient

CLIENT = "127.0.0.2"  # a loopback address that is not the trusted proxy (127.0.0.1)
CAP = 3


@pytest.fixture
def capped(stack):
    edge = stack.edge("edge-1", TICKWIRE_EDGE_TRUSTED_PROXIES="127.0.0.1",
                      TICKWIRE_EDGE_MAX_CONNECTIONS_PER_IP=str(CAP))
    return edge, stack.haproxy()


async def connect_from(url: str, local: str, forged: str | None) -> WsClient:
    headers = {"X-Forwarded-For": forged} if forged else {}
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(local, 0)))
    try:
        ws = await session.ws_connect(url, headers=headers)
    except Exception:
        await session.close()
        raise
    return WsClient(session, ws)


async def over_cap_status(url: str, forged: list[str | None]) -> int | None:
    """Opens one socket per entry of `forged`, then one more; the extra one's refusal status."""
    clients = [await connect_from(url, CLIENT, header) for header in forged]
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            extra = await connect_from(url, CLIENT, "198.51.100.77")
            clients.append(extra)
        return refused.value.status
    finally:
        for client in clients:
            await client.close()


async def test_forged_forwarded_for_does_not_escape_the_per_address_cap(capped):
    edge, lb = capped
    forged = [f"203.0.113.{n}" for n in range(1, CAP + 1)]
    assert await over_cap_status(lb.ws_url, forged) == 503
    # A chain with junk and a forged "trusted" hop changes nothing either.
    chains = ["not-an-address, 127.0.0.1", "127.0.0.1", "203.0.113.9, 127.0.0.1, 127.0.0.1"]
    assert await over_cap_status(lb.ws_url, chains) == 503


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(capped):
    edge, _ = capped
    forged = [f"203.0.113.{n}" for n in range(1, CAP + 1)]
    assert await over_cap_status(edge.ws_url, forged) == 503


async def test_clients_behind_the_proxy_are_told_apart(capped):
    _, lb = capped
    clients = [await connect_from(lb.ws_url, CLIENT, None) for _ in range(CAP)]
    try:
        other = await connect_from(lb.ws_url, "127.0.0.3", None)
        clients.append(other)
        await other.send({"action": "ping"})
        assert (await other.until(lambda m: m["type"] == "pong"))["type"] == "pong"
    finally:
        for client in clients:
            await client.close()


async def test_a_request_head_trickled_at_one_byte_per_second_is_cut_off(capped):
    _, lb = capped
    # HAProxy's timeout http-request is 10 s; 30 bytes at 1 byte/s is well past it and far
    # short of the whole head.
    answer, sent = await trickle_upgrade(lb.port, 30)
    assert answer is not None, f"still open after {sent} bytes at 1 byte/s"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer
    assert sent < 30
