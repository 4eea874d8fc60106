"""The REST fallback: the cached latest quote of one or many symbols, ETag-aware.

A read counts as interest: the symbols stay subscribed upstream for a while, so a
client that polls sees fresh prices rather than a frozen cache.
"""

from __future__ import annotations

import hashlib

import orjson
from aiohttp import web

from tickwire.core.models import Tick, normalise_symbol
from tickwire.core.service import error_response
from tickwire.edge.admission import Refused
from tickwire.edge.node import EdgeNode

MAX_BATCH = 500


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
            self._node.admission.authenticate(request)
        except Refused as refused:
            return refused.response
        symbol = normalise_symbol(request.match_info["symbol"])
        if symbol is None:
            return error_response(400, "INVALID_SYMBOL", "not a valid symbol")
        await self._node.poll_interest.touch([symbol])
        [tick] = await self._node.bus.latest([symbol])
        if tick is None:
            return error_response(404, "NOT_FOUND", f"no quote cached for {symbol} yet")
        return _cached_json(request, quote_body(tick, self._freshness), _etag([symbol], [tick]))

    async def many(self, request: web.Request) -> web.Response:
        try:
            self._node.admission.authenticate(request)
        except Refused as refused:
            return refused.response
        raw = [s for s in request.query.get("symbols", "").split(",") if s.strip()]
        if not raw:
            return error_response(400, "INVALID_SYMBOL", "give ?symbols=A,B")
        if len(raw) > MAX_BATCH:
            return error_response(400, "INVALID_SYMBOL", f"at most {MAX_BATCH} symbols")
        invalid = [s[:24] for s in raw if normalise_symbol(s) is None]
        if invalid:
            return error_response(400, "INVALID_SYMBOL",
                                  "not valid symbols: " + ", ".join(invalid)[:200])
        symbols = list(dict.fromkeys(normalise_symbol(s) for s in raw))
        await self._node.poll_interest.touch(symbols)
        ticks = await self._node.bus.latest(symbols)
        body = {
            "quotes": [quote_body(t, self._freshness) for t in ticks if t is not None],
            "missing": [s for s, t in zip(symbols, ticks) if t is None],
        }
        return _cached_json(request, body, _etag(symbols, ticks))
