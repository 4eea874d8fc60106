"""The REST fallback: the cached latest quote of one or many symbols, ETag-aware.

Guarantees: a read counts as interest: the symbols stay subscribed upstream for
`poll_interest_seconds` after the last read (at most `max_symbols` of them at once), so a
client that polls sees fresh prices rather than a frozen cache. A read of a held symbol
with nothing cached yet waits up to `cold_read_wait_ms` for its first quote (coldread.py)
before it answers without it. A response's ETag names the exact versions served.

Auth: every read checks its token (signature, `exp`, `aud`) and its entitlements. A
single read of a forbidden symbol is 403 FORBIDDEN; a batch is 403 when it allows none
of its symbols, otherwise 200 with the allowed ones and the others listed in `forbidden`
(neither read nor held upstream).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from tickwire.core.models import Tick, normalise_symbol
from tickwire.core.service import error_response
from tickwire.edge.admission import Refused, forbidden_response
from tickwire.edge.commands import parse_symbols_query
from tickwire.edge.hub import Hub

if TYPE_CHECKING:
    from tickwire.edge.node import EdgeNode

MAX_BATCH = 500


class PollInterest:
    """REST reads count as interest: a polled symbol stays held upstream (so the
    ingestor keeps fetching it) for `ttl` seconds after the last read."""

    def __init__(self, hub: Hub, ttl: float, max_symbols: int = 5000,
                 clock: Callable[[], float] = time.monotonic):
        self._hub = hub
        self._ttl = ttl
        self._max = max_symbols
        self._clock = clock
        self._expiry: dict[str, float] = {}

    async def touch(self, symbols: list[str]) -> list[str]:
        """Renew or start the interest in `symbols`; returns those now held upstream."""
        if self._ttl <= 0:
            return []
        until = self._clock() + self._ttl
        new = [s for s in symbols if s not in self._expiry][: max(0, self._max - len(self._expiry))]
        for symbol in symbols:
            if symbol in self._expiry or symbol in new:
                self._expiry[symbol] = until
        if new:
            for symbol in await self._hub.hold(new):
                self._expiry.pop(symbol, None)
        return [s for s in symbols if s in self._expiry]

    def expire(self) -> None:
        now = self._clock()
        expired = [s for s, until in self._expiry.items() if until <= now]
        for symbol in expired:
            del self._expiry[symbol]
        if expired:
            self._hub.let_go(expired)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(max(0.5, min(5.0, self._ttl / 3)))
            self.expire()


def quote_body(tick: Tick, freshness_seconds: float) -> dict:
    age_ms = tick.age_ms
    return {**tick.data, "seq": tick.seq, "epoch": tick.epoch,
            "stale": age_ms > freshness_seconds * 1000, "ageMs": age_ms}


def _etag(symbols: list[str], ticks: list[Tick | None]) -> str:
    """Names the exact versions served: it changes with every new tick of any symbol."""
    versions = ",".join(f"{s}:{t.epoch}:{t.seq}" if t else f"{s}:-" for s, t in zip(symbols, ticks))
    return '"' + hashlib.blake2s(versions.encode(), digest_size=12).hexdigest() + '"'


def _cached_json(request: web.Request, body: dict, etag: str) -> web.Response:
    """304 when the client already holds this version (its `ageMs` is then the client's
    to advance); `no-cache` makes every poll revalidate."""
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=orjson.dumps(body), content_type="application/json", headers=headers)


class QuoteRoutes:
    def __init__(self, node: EdgeNode):
        self._node = node
        self._freshness = node.settings.freshness_seconds

    async def one(self, request: web.Request) -> web.Response:
        try:
            principal = self._node.admission.authenticate(request)
        except Refused as refused:
            return refused.response
        symbol = normalise_symbol(request.match_info["symbol"])
        if symbol is None:
            return error_response(400, "INVALID_SYMBOL", "not a valid symbol")
        if not principal.entitlements.allows(symbol):
            return forbidden_response([symbol])
        [tick] = await self._read([symbol])
        if tick is None:
            return error_response(404, "NOT_FOUND", f"no quote cached for {symbol} yet")
        return _cached_json(request, quote_body(tick, self._freshness), _etag([symbol], [tick]))

    async def many(self, request: web.Request) -> web.Response:
        try:
            principal = self._node.admission.authenticate(request)
        except Refused as refused:
            return refused.response
        symbols, invalid, given = parse_symbols_query(request.query.get("symbols", ""))
        if not given:
            return error_response(400, "INVALID_SYMBOL", "give ?symbols=A,B")
        if given > MAX_BATCH:
            return error_response(400, "INVALID_SYMBOL", f"at most {MAX_BATCH} symbols")
        if invalid:
            return error_response(400, "INVALID_SYMBOL",
                                  "not valid symbols: " + ", ".join(invalid)[:200])
        symbols, forbidden = principal.entitlements.split(symbols)
        if not symbols:
            return forbidden_response(forbidden)
        ticks = await self._read(symbols)
        body = {
            "quotes": [quote_body(t, self._freshness) for t in ticks if t is not None],
            "missing": [s for s, t in zip(symbols, ticks) if t is None],
        }
        if forbidden:
            body["forbidden"] = forbidden
        return _cached_json(request, body, _etag(symbols, ticks))

    async def _read(self, symbols: list[str]) -> list[Tick | None]:
        """The cached ticks of `symbols`; the held ones missing are waited for (a cold read)."""
        node = self._node
        held = await node.poll_interest.touch(symbols)
        ticks = await node.hub.latest(symbols)
        if held and None in ticks:
            waited = set(held)
            cold = [s for s, t in zip(symbols, ticks) if t is None and s in waited]
            found = await node.cold_reads.first_quotes(cold, node.hub.latest)
            ticks = [t if t is not None else found.get(s) for s, t in zip(symbols, ticks)]
        return ticks
