"""What the HTTP quote APIs share: one session, JSON decoding, error classification."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import aiohttp

from tickwire.ingestor.providers.base import ProviderError


class HttpQuoteApi:
    def __init__(self, base_url: str, api_key: str, timeout_seconds: float = 5.0):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def get_json(self, path: str, params: dict[str, str]) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.get(f"{self.base_url}{path}", params=params) as response:
                if response.status == 429:
                    raise ProviderError("HTTP 429", rate_limited=True)
                if response.status >= 500:
                    raise ProviderError(f"HTTP {response.status}", transient=True)
                if response.status >= 400:
                    raise ProviderError(f"HTTP {response.status}")
                try:
                    return await response.json(content_type=None)
                except ValueError:
                    raise ProviderError("answer is not JSON") from None
        except asyncio.TimeoutError:
            raise ProviderError("timed out", transient=True) from None
        except aiohttp.ClientError as exc:
            raise ProviderError(f"connection failed: {exc!r:.120}", transient=True) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def number(value: Any, field: str) -> float:
    """A finite float from a provider's string or number, else ProviderError."""
    try:
        parsed = float(str(value).strip().rstrip("%"))
    except (TypeError, ValueError):
        raise ProviderError(f"field {field!r} is not a number: {value!r:.40}") from None
    if not math.isfinite(parsed):
        raise ProviderError(f"field {field!r} is not finite")
    return parsed
