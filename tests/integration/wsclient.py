"""A minimal protocol client for tests: raw aiohttp WebSocket plus bounded waits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import msgpack


class WsClient:
    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse):
        self.session = session
        self.ws = ws
        self.received: list[dict[str, Any]] = []
        self.binary = ws.protocol == "tickwire.v1.msgpack"

    @classmethod
    async def connect(cls, url: str, protocols: tuple[str, ...] = (), **kwargs) -> WsClient:
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(url, protocols=protocols, **kwargs)
        except Exception:
            await session.close()
            raise
        return cls(session, ws)

    async def send(self, message: Any) -> None:
        if self.binary:
            await self.ws.send_bytes(msgpack.packb(message))
        else:
            await self.ws.send_json(message)

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        frame = await self.ws.receive(timeout=timeout)
        if frame.type == aiohttp.WSMsgType.TEXT:
            message = frame.json()
        elif frame.type == aiohttp.WSMsgType.BINARY:
            message = msgpack.unpackb(frame.data)
        else:
            raise ConnectionError(f"socket ended: {frame.type} {frame.data} {frame.extra}")
        self.received.append(message)
        return message

    async def until(self, predicate: Callable[[dict], bool], timeout: float = 15.0) -> dict[str, Any]:
        """The first message matching `predicate` (others are kept in `received`)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching message in {timeout}s; got {self.received[-5:]}")
            message = await self.next(timeout=left)
            if predicate(message):
                return message

    async def updates(self, symbol: str, count: int, timeout: float = 20.0) -> list[dict]:
        """The next `count` updates of `symbol`, unpacking batch_update frames."""
        found: list[dict] = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(found)}/{count} updates of {symbol} in {timeout}s")
            message = await self.next(timeout=left)
            if message.get("type") == "price_update" and message["symbol"] == symbol:
                found.append(message)
            elif message.get("type") == "batch_update":
                found += [u for u in message["updates"] if u["symbol"] == symbol]
        return found

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()


async def subscribed(url: str, symbols: list[str], **kwargs) -> WsClient:
    """A WsClient past its `connected` message and the ack of `symbols`."""
    client = await WsClient.connect(url, **kwargs)
    try:
        assert (await client.next())["type"] == "connected"
        await client.send({"action": "subscribe", "symbols": symbols})
        await client.until(lambda m: m["type"] == "subscribed")
    except BaseException:
        await client.close()
        raise
    return client


async def eventually(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.2):
    """Poll an async `check` until it returns a truthy value; raise after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise TimeoutError(f"condition not met in {timeout}s (last: {last!r})")


async def get_json(url: str, **kwargs) -> tuple[int, Any, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, **kwargs) as response:
            body = await response.json(content_type=None) if response.status != 304 else None
            return response.status, body, {k.lower(): v for k, v in response.headers.items()}
