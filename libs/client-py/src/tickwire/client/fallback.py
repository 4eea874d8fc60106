"""The REST fallback: reads of the edge's cached quotes, revalidated with ETags.

A poll that finds nothing new costs one 304 and no body, so polling many symbols every
`polling_interval` stays cheap for client and edge alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from tickwire.client.models import FallbackError

BATCH = 200  # symbols per request, well under the edge's 500 and any URL length limit
QUOTE_EXTRAS = ("seq", "epoch", "stale", "ageMs")


def split_quote(body: dict[str, Any]) -> tuple[dict[str, Any], int, str | None]:
    """(StockQuote, seq, epoch) out of a REST quote body."""
    data = {k: v for k, v in body.items() if k not in QUOTE_EXTRAS}
    return data, int(body.get("seq", 0)), body.get("epoch")


class QuoteFetcher:
    def __init__(self, session: aiohttp.ClientSession, base_url: str,
                 headers: Callable[[], dict[str, str]], timeout: float):
        """`headers` is asked on every request: a token refreshed meanwhile is used."""
        self._session = session
        self._base = base_url
        self._headers = headers
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._etags: dict[tuple[str, ...], str] = {}

    async def one(self, symbol: str) -> dict[str, Any] | None:
        """The cached quote body of `symbol`, or None when the edge has none (404)."""
        url = f"{self._base}/api/quotes/{quote(symbol, safe='')}"
        try:
            async with self._session.get(url, headers=self._headers(),
                                         timeout=self._timeout) as response:
                if response.status == 404:
                    return None
                if response.status != 200:
                    raise FallbackError(f"GET {url}: HTTP {response.status}")
                return orjson.loads(await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise FallbackError(f"GET {url}: {exc!r}") from exc

    async def many(self, symbols: Sequence[str]) -> list[dict[str, Any]]:
        """Quote bodies that changed since the previous call for the same symbols."""
        changed: list[dict[str, Any]] = []
        live_keys = set()
        for start in range(0, len(symbols), BATCH):
            key = tuple(symbols[start:start + BATCH])
            live_keys.add(key)
            changed += await self._batch(key)
        for stale in set(self._etags) - live_keys:
            del self._etags[stale]
        return changed

    async def _batch(self, key: tuple[str, ...]) -> list[dict[str, Any]]:
        url = f"{self._base}/api/quotes"
        headers = self._headers()
        if etag := self._etags.get(key):
            headers["If-None-Match"] = etag
        try:
            async with self._session.get(url, params={"symbols": ",".join(key)}, headers=headers,
                                         timeout=self._timeout) as response:
                if response.status == 304:
                    return []
                if response.status != 200:
                    raise FallbackError(f"GET {url}: HTTP {response.status}")
                body = orjson.loads(await response.read())
                if etag := response.headers.get("ETag"):
                    self._etags[key] = etag
                return list(body.get("quotes", []))
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
            raise FallbackError(f"GET {url}: {exc!r}") from exc
