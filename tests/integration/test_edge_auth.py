"""Tokens through HAProxy with real pyjwt tokens, HS256 and RS256 (#18): expiry and refresh
on the socket, entitlements on subscribe / REST / SSE, the per-subject connection cap, and
hostile tokens refused before the upgrade. One edge (both algorithms configured) behind
HAProxy serves the whole module."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tickwire.localstack import ServiceLauncher, start_haproxy

from integration.stack import Service, Stack
from integration.wsclient import WsClient, eventually, get_json

SECRET = "an-integration-secret-of-32-bytes-or-more"
AUDIENCE = "tickwire"
PER_USER = 10
WARNING_SECONDS = 2


def _pem_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


PRIVATE, PUBLIC = _pem_pair()


def hs256(sub: str, lifetime: float = 120, **claims) -> str:
    return jwt.encode({"sub": sub, "aud": AUDIENCE, "exp": int(time.time() + lifetime), **claims},
                      SECRET, "HS256")


def rs256(sub: str, lifetime: float = 120, key: str = PRIVATE, **claims) -> str:
    return jwt.encode({"sub": sub, "aud": AUDIENCE, "exp": int(time.time() + lifetime), **claims},
                      key, "RS256")


class Edge:
    def __init__(self, direct: Service, lb: Service):
        self.direct, self.lb = direct, lb

    def ws(self, token: str) -> str:
        return f"ws://127.0.0.1:{self.lb.port}/ws?token={token}"

    @property
    def http(self) -> str:
        return self.lb.url


@pytest.fixture(scope="module")
def edge(redis_server: str, kafka_server: str, tmp_path_factory) -> Iterator[Edge]:
    workdir = tmp_path_factory.mktemp("auth")
    stack = Stack(ServiceLauncher(redis_server, kafka_server, workdir / "logs",
                                  env={"TICKWIRE_LOG_FORMAT": "text"}), [], workdir, start_haproxy)
    try:
        direct = stack.edge("edge-auth", TICKWIRE_EDGE_JWT_SECRET=SECRET,
                            TICKWIRE_EDGE_JWT_PUBLIC_KEY=PUBLIC,
                            TICKWIRE_EDGE_JWT_AUDIENCE=AUDIENCE,
                            TICKWIRE_EDGE_TOKEN_EXPIRY_WARNING_SECONDS=str(WARNING_SECONDS),
                            TICKWIRE_EDGE_MAX_CONNECTIONS_PER_USER=str(PER_USER),
                            TICKWIRE_EDGE_TIER_CONNECTION_LIMITS="vip=12")
        yield Edge(direct, stack.haproxy())
    finally:
        for process in reversed(stack.started):
            process.stop()


async def connected(url: str) -> WsClient:
    client = await WsClient.connect(url)
    try:
        assert (await client.next())["type"] == "connected"
    except BaseException:
        await client.close()
        raise
    return client


async def closed_with(client: WsClient, timeout: float = 15.0) -> int | None:
    """Reads until the socket ends; its close code."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = await client.ws.receive(timeout=deadline - time.monotonic())
        if frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return client.ws.close_code
        if frame.type == aiohttp.WSMsgType.TEXT:
            client.received.append(frame.json())
    raise TimeoutError("the socket stayed open")


async def test_a_lapsing_token_is_warned_then_closed_with_4001(edge):
    exp = time.time() + 3
    client = await connected(edge.ws(hs256("lapse", lifetime=3)))
    try:
        warning = await client.until(lambda m: m["type"] == "token_expiring")
        assert 0 <= warning["expiresInMs"] <= WARNING_SECONDS * 1000
        error = await client.until(lambda m: m["type"] == "error")
        assert error["code"] == "UNAUTHORIZED" and error["message"] == "token expired"
        assert await closed_with(client) == 4001
        assert time.time() >= int(exp)
    finally:
        await client.close()


async def test_a_refreshed_socket_lives_past_its_first_exp(edge, injector):
    first_exp = int(time.time() + 3)
    client = await connected(edge.ws(rs256("refresher", lifetime=3)))
    try:
        await client.send({"action": "subscribe", "symbols": ["AUTHR1", "AUTHR2"]})
        await client.until(lambda m: m["type"] == "subscribed")
        await client.until(lambda m: m["type"] == "token_expiring")
        # A bad token, or one of another subject, changes nothing.
        for bad in ["garbage", rs256("someone-else"), hs256("refresher", lifetime=-10)]:
            await client.send({"action": "refresh", "token": bad})
            error = await client.until(lambda m: m["type"] == "error")
            assert error["code"] == "UNAUTHORIZED"
        # A narrower token of the same subject: what it no longer allows is unsubscribed.
        await client.send({"action": "refresh",
                           "token": hs256("refresher", lifetime=600, symbols=["AUTHR1"])})
        narrowed = await client.until(lambda m: m["type"] == "error")
        assert narrowed["code"] == "FORBIDDEN" and narrowed["symbols"] == ["AUTHR2"]
        refreshed = await client.until(lambda m: m["type"] == "refreshed")
        assert 590_000 <= refreshed["expiresInMs"] <= 600_000
        await eventually(lambda: _past(first_exp + 2))
        await eventually(lambda: _has_subscriber(injector, "AUTHR1"))
        await injector.publish("AUTHR2", 1)
        await injector.publish("AUTHR1", 1)
        [update] = await client.updates("AUTHR1", 1)
        assert update["seq"] == 1
        assert not [m for m in client.received if m.get("symbol") == "AUTHR2"]
        await client.send({"action": "ping"})
        await client.until(lambda m: m["type"] == "pong")
    finally:
        await client.close()


async def _past(when: float) -> bool:
    return time.time() > when


async def _has_subscriber(injector, symbol: str) -> bool:
    return await injector.subscribers(symbol) > 0


async def test_entitlements_on_subscribe_rest_and_sse(edge, injector):
    token = hs256("entitled", symbols=["AUTHE1", "NSE:*"])
    client = await connected(edge.ws(token))
    try:
        await client.send({"action": "subscribe",
                           "symbols": ["AUTHE1", "AUTHE2", "NSE:AUTHE3", "LSE:AUTHE4"]})
        forbidden = await client.until(lambda m: m["type"] == "error")
        assert forbidden["code"] == "FORBIDDEN"
        assert forbidden["symbols"] == ["AUTHE2", "LSE:AUTHE4"]
        ack = await client.until(lambda m: m["type"] == "subscribed")
        assert ack["symbols"] == ["AUTHE1", "NSE:AUTHE3"]
        await eventually(lambda: _has_subscriber(injector, "NSE:AUTHE3"))
        await injector.publish("NSE:AUTHE3", 7)
        assert (await client.updates("NSE:AUTHE3", 1))[0]["seq"] == 7
    finally:
        await client.close()

    auth = {"Authorization": f"Bearer {token}"}
    status, body, _ = await get_json(f"{edge.http}/api/quotes/AUTHE2", headers=auth)
    assert status == 403 and body["error"]["code"] == "FORBIDDEN"
    assert body["error"]["symbols"] == ["AUTHE2"]
    status, body, _ = await get_json(f"{edge.http}/api/quotes/NSE:AUTHE3", headers=auth)
    assert status == 200 and body["seq"] == 7
    status, body, _ = await get_json(f"{edge.http}/api/quotes?symbols=AUTHE2,LSE:AUTHE4",
                                     headers=auth)
    assert status == 403 and body["error"]["symbols"] == ["AUTHE2", "LSE:AUTHE4"]
    status, body, _ = await get_json(f"{edge.http}/api/quotes?symbols=NSE:AUTHE3,AUTHE2",
                                     headers=auth)
    assert status == 200 and body["forbidden"] == ["AUTHE2"]
    assert [q["seq"] for q in body["quotes"]] == [7]

    status, body, _ = await get_json(f"{edge.http}/api/stream?symbols=AUTHE2&token={token}")
    assert status == 403 and body["error"]["code"] == "FORBIDDEN"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{edge.http}/api/stream?symbols=AUTHE2,NSE:AUTHE3",
                               headers=auth) as response:
            assert response.status == 200
            events = [await _sse_event(response), await _sse_event(response)]
    assert events[0]["type"] == "error" and events[0]["symbols"] == ["AUTHE2"]
    assert events[1]["type"] == "price_update" and events[1]["symbol"] == "NSE:AUTHE3"


async def _sse_event(response: aiohttp.ClientResponse) -> dict:
    import orjson

    while True:
        line = await asyncio.wait_for(response.content.readline(), 10)
        if not line:
            raise ConnectionError("stream ended")
        if line.startswith(b"data: "):
            return orjson.loads(line[6:])


async def test_an_sse_stream_whose_token_lapses_gets_an_error_and_ends(edge):
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{edge.http}/api/stream?symbols=AUTHS1",
                               headers={"Authorization": f"Bearer {rs256('sse', 2)}"}) as response:
            assert response.status == 200
            event = await _sse_event(response)
            assert event["code"] == "UNAUTHORIZED" and event["message"] == "token expired"
            assert (await asyncio.wait_for(response.content.read(), 10)).strip() == b""


async def test_the_connection_over_a_subjects_limit_is_refused(edge):
    token = hs256("many-tabs")
    clients = [await connected(edge.ws(token)) for _ in range(PER_USER)]
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await WsClient.connect(edge.ws(token))
        assert refused.value.status == 429
        # SSE counts too, and the answer says why.
        status, body, _ = await get_json(f"{edge.http}/api/stream?symbols=AUTHC1&token={token}")
        assert status == 429 and body["error"]["code"] == "CONNECTION_LIMIT_EXCEEDED"
        # Another subject is not affected; a tier may allow more.
        other = await connected(edge.ws(rs256("someone", tier="vip")))
        await other.close()
        await clients.pop().close()
        clients.append(await _connect_eventually(edge.ws(token)))
    finally:
        for client in clients:
            await client.close()


async def _connect_eventually(url: str) -> WsClient:
    """The edge releases a closed socket's slot when its read loop ends: soon, not at once."""
    async def attempt() -> WsClient | None:
        try:
            return await connected(url)
        except aiohttp.WSServerHandshakeError:
            return None
    return await eventually(attempt, timeout=10)


def _hs256_signed_with(key: str, claims: dict) -> str:
    """HS/RS confusion: an HS256 token whose HMAC key is the RS256 public key."""
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}." \
              f"{b64(json.dumps(claims).encode())}"
    return f"{signing}.{b64(hmac.new(key.encode(), signing.encode(), hashlib.sha256).digest())}"


async def test_hostile_tokens_are_refused_before_the_upgrade(edge, injector):
    bystander = await connected(edge.ws(hs256("bystander")))
    try:
        await bystander.send({"action": "subscribe", "symbols": ["AUTHH1"]})
        await bystander.until(lambda m: m["type"] == "subscribed")
        claims = {"sub": "mallory", "aud": AUDIENCE, "exp": int(time.time() + 60)}
        hostile = {
            "alg none": jwt.encode(claims, None, "none"),
            "HS/RS confusion": _hs256_signed_with(PUBLIC, claims),
            "another RSA key": rs256("mallory", key=_pem_pair()[0]),
            "expired": hs256("mallory", lifetime=-30),
            "wrong audience": jwt.encode({**claims, "aud": "elsewhere"}, SECRET, "HS256"),
            "no subject": jwt.encode({"aud": AUDIENCE, "exp": claims["exp"]}, SECRET, "HS256"),
            "garbage": "not-a-token",
        }
        for name, token in hostile.items():
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await WsClient.connect(edge.ws(token))
            assert refused.value.status == 401, name
            status, body, _ = await get_json(f"{edge.http}/api/quotes/AUTHH1",
                                             headers={"Authorization": f"Bearer {token}"})
            assert status == 401 and body["error"]["code"] == "UNAUTHORIZED", name

        # Oversized tokens never reach the token check. Through HAProxy: a JSON 431 up to its
        # 16 KiB buffer, HAProxy's own 400 beyond; straight at an edge, aiohttp's 400.
        status, body, _ = await get_json(f"{edge.http}/api/quotes/AUTHH1?token={'a' * 9000}")
        assert status == 431 and body["error"]["code"] == "REQUEST_TOO_LARGE"
        status, _, _ = await get_json(f"{edge.http}/api/quotes/AUTHH1",
                                      headers={"Authorization": f"Bearer {'a' * 9000}"})
        assert status == 431
        huge = "a" * 100_000
        for url, headers in [(f"{edge.ws(huge)}", {}),
                             (f"ws://127.0.0.1:{edge.lb.port}/ws",
                              {"Authorization": f"Bearer {huge}"}),
                             (f"{edge.direct.ws_url}?token={huge}", {})]:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await WsClient.connect(url, headers=headers)
            assert refused.value.status == 400

        # Nothing else was affected: the bystander still streams.
        await eventually(lambda: _has_subscriber(injector, "AUTHH1"))
        await injector.publish("AUTHH1", 3)
        assert (await bystander.updates("AUTHH1", 1))[0]["seq"] == 3
    finally:
        await bystander.close()


async def test_the_python_sdk_refreshes_short_tokens_and_keeps_its_socket(edge, injector):
    from tickwire.client import ClientConfig, TickwireClient

    issued: list[str] = []
    # Each token lives 3 s: the edge warns at once, the SDK refreshes, and so on.
    async def provider() -> str:
        issued.append(token := rs256("sdk-user", lifetime=3, symbols=["AUTHP1"]))
        return token

    messages: list[dict] = []
    client = TickwireClient(ClientConfig(url=f"ws://127.0.0.1:{edge.lb.port}/ws",
                                         token_provider=provider, wire_format="json"))
    client.on_message(messages.append)
    updates = client.updates()
    await client.connect()
    try:
        first_client_id = client.client_id
        await client.subscribe(["AUTHP1", "AUTHP2"])
        await eventually(lambda: _seen(messages, "refreshed", 2), timeout=30)
        assert client.client_id == first_client_id and client.is_connected
        forbidden = [m for m in messages if m.get("code") == "FORBIDDEN"]
        assert forbidden and forbidden[0]["symbols"] == ["AUTHP2"]
        assert not [m for m in messages if m.get("type") == "error"
                    and m.get("code") == "UNAUTHORIZED"]
        await eventually(lambda: _has_subscriber(injector, "AUTHP1"))
        await injector.publish("AUTHP1", 11)
        update = await asyncio.wait_for(anext(updates), 10)
        assert (update.symbol, update.seq) == ("AUTHP1", 11)
        assert len(issued) >= 3  # the connect, then one per refresh
    finally:
        await client.disconnect()


async def _seen(messages: list[dict], kind: str, count: int) -> bool:
    return sum(m.get("type") == kind for m in messages) >= count
