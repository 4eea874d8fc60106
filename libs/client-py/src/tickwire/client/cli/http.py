"""One-shot JSON reads for the CLI, with errors a person can act on."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

TIMEOUT = aiohttp.ClientTimeout(total=10)


class Unreachable(Exception):
    """The endpoint did not answer over HTTP (refused, timed out, TLS failed)."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"{url}: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    edge: str | None
    """The X-Tickwire-Edge header: which edge answered."""


class Http:
    def __init__(self, tls: ssl.SSLContext | bool):
        self._tls = tls
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Http:
        self._session = aiohttp.ClientSession(
            timeout=TIMEOUT, connector=aiohttp.TCPConnector(ssl=self._tls))
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._session is not None
        await self._session.close()

    async def get(self, url: str) -> Reply:
        assert self._session is not None
        try:
            async with self._session.get(url) as response:
                raw = await response.read()
                try:
                    body = orjson.loads(raw) if raw else None
                except orjson.JSONDecodeError:
                    body = raw.decode(errors="replace")
                return Reply(response.status, body, response.headers.get("X-Tickwire-Edge"))
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise Unreachable(url, describe(exc)) from exc


def describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = exc.os_error
        return f"cannot connect: {error.strerror or os.strerror(error.errno or 0)}"
    return str(exc) or type(exc).__name__


def error_text(body: Any) -> str:
    """The message of an `{"error":{"code","message"}}` body, else the body itself."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return f"{error.get('code')}: {error.get('message')}"
    return str(body)[:200]
