"""What the HTTP quote APIs share: one session, JSON decoding, error classification."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import aiohttp
import orjson

from tickwire.ingestor.providers.base import FailureKind, ProviderError

USER_AGENT = "tickwire-ingestor"


class HttpQuoteApi:
    """GETs JSON. Every failure is a ProviderError: timeouts, connection errors and 5xx are
    TRANSIENT, 429 RATE_LIMITED, other 4xx ERROR, a body that is not JSON MALFORMED."""

    def __init__(self, base_url: str, api_key: str, timeout_seconds: float = 5.0):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def get_json(self, path: str, params: dict[str, str]) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout,
                                                  headers={"User-Agent": USER_AGENT})
        try:
            async with self._session.get(f"{self.base_url}{path}", params=params) as response:
                if response.status == 429:
                    raise ProviderError("HTTP 429", FailureKind.RATE_LIMITED)
                if response.status >= 500:
                    raise ProviderError(f"HTTP {response.status}", FailureKind.TRANSIENT)
                if response.status >= 400:
                    raise ProviderError(f"HTTP {response.status}", FailureKind.ERROR)
                body = await response.read()
        except asyncio.TimeoutError:
            raise ProviderError("timed out", FailureKind.TRANSIENT) from None
        except aiohttp.ClientError as exc:
            # Some client errors carry the request URL, and with it the API key.
            detail = f"{type(exc).__name__}: {exc}"
            if self.api_key:
                detail = detail.replace(self.api_key, "***")
            raise ProviderError(f"connection failed: {detail:.120}", FailureKind.TRANSIENT) from None
        return decode_body(body)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def decode_body(body: bytes) -> Any:
    """The JSON value of a provider's answer; HTML or anything else is MALFORMED."""
    if body.lstrip()[:1] == b"<":
        raise ProviderError(f"HTML answer: {body[:60]!r}", FailureKind.MALFORMED)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ProviderError(f"answer is not JSON: {body[:60]!r}", FailureKind.MALFORMED) from None


def number(value: Any, field: str) -> float:
    """A finite float from a provider's string or number, else an INVALID_QUOTE error."""
    if isinstance(value, bool):
        raise ProviderError(f"field {field!r} is not a number: {value!r}", FailureKind.INVALID_QUOTE)
    try:
        parsed = float(str(value).strip().rstrip("%"))
    except (TypeError, ValueError):
        raise ProviderError(f"field {field!r} is not a number: {value!r:.40}",
                            FailureKind.INVALID_QUOTE) from None
    if not math.isfinite(parsed):
        raise ProviderError(f"field {field!r} is not finite", FailureKind.INVALID_QUOTE)
    return parsed
