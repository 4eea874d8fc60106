"""Alpha Vantage GLOBAL_QUOTE: one symbol per request, numbered string fields."""

from __future__ import annotations

import asyncio
import logging
import time

from tickwire.core.models import InvalidQuote, StockQuote, iso_from_unix
from tickwire.ingestor.providers.base import ProviderError
from tickwire.ingestor.providers.http import HttpQuoteApi, number

log = logging.getLogger(__name__)


def parse_global_quote(symbol: str, body: object) -> StockQuote:
    if not isinstance(body, dict):
        raise ProviderError("answer is not an object")
    for limit_field in ("Note", "Information"):
        if limit_field in body:
            raise ProviderError(f"rate limited: {str(body[limit_field])[:120]}", rate_limited=True)
    if "Error Message" in body:
        raise ProviderError(f"error: {str(body['Error Message'])[:120]}")
    quote = body.get("Global Quote")
    if not isinstance(quote, dict) or not quote:
        raise ProviderError(f"no quote for {symbol}")
    try:
        return StockQuote(
            symbol=symbol,
            price=number(quote.get("05. price"), "05. price"),
            change=number(quote.get("09. change"), "09. change"),
            change_percent=number(quote.get("10. change percent"), "10. change percent"),
            volume=int(number(quote.get("06. volume"), "06. volume")),
            high=number(quote.get("03. high"), "03. high"),
            low=number(quote.get("04. low"), "04. low"),
            open=number(quote.get("02. open"), "02. open"),
            previous_close=number(quote.get("08. previous close"), "08. previous close"),
            timestamp=iso_from_unix(time.time()),
            source="alphavantage",
        )
    except InvalidQuote as exc:
        raise ProviderError(str(exc)) from None


class AlphaVantageProvider:
    name = "alphavantage"
    max_batch = 1

    def __init__(self, base_url: str, api_key: str):
        self._api = HttpQuoteApi(base_url, api_key)

    async def fetch(self, symbols: list[str]) -> dict[str, StockQuote]:
        async def one(symbol: str) -> StockQuote:
            body = await self._api.get_json(
                "/query", {"function": "GLOBAL_QUOTE", "symbol": symbol, "apikey": self._api.api_key})
            return parse_global_quote(symbol, body)

        results = await asyncio.gather(*(one(s) for s in symbols), return_exceptions=True)
        quotes = {}
        errors = []
        for symbol, result in zip(symbols, results):
            if isinstance(result, StockQuote):
                quotes[symbol] = result
            elif isinstance(result, ProviderError):
                errors.append(result)
            else:
                raise result
        if not quotes and errors:
            raise errors[0]
        return quotes

    async def close(self) -> None:
        await self._api.close()
