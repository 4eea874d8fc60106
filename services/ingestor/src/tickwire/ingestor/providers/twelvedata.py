"""Twelve Data /quote: many symbols per request; a batch answer is keyed by symbol."""

from __future__ import annotations

import logging
import time

from tickwire.core.models import InvalidQuote, StockQuote, iso_from_unix
from tickwire.ingestor.providers.base import ProviderError
from tickwire.ingestor.providers.http import HttpQuoteApi, number

log = logging.getLogger(__name__)


def _error_of(body: dict) -> ProviderError | None:
    if body.get("status") != "error":
        return None
    code = body.get("code")
    message = f"error {code}: {str(body.get('message'))[:120]}"
    return ProviderError(message, rate_limited=code == 429,
                         transient=isinstance(code, int) and code >= 500)


def parse_quote(symbol: str, body: dict) -> StockQuote:
    error = _error_of(body)
    if error:
        raise error
    stamp = body.get("last_quote_at") or body.get("timestamp")
    try:
        when = float(stamp) if stamp is not None else time.time()
    except (TypeError, ValueError):
        when = time.time()
    try:
        return StockQuote(
            symbol=symbol,
            price=number(body.get("close"), "close"),
            change=number(body.get("change"), "change"),
            change_percent=number(body.get("percent_change"), "percent_change"),
            volume=int(number(body.get("volume", 0), "volume")),
            high=number(body.get("high"), "high"),
            low=number(body.get("low"), "low"),
            open=number(body.get("open"), "open"),
            previous_close=number(body.get("previous_close"), "previous_close"),
            timestamp=iso_from_unix(when),
            source="twelvedata",
        )
    except InvalidQuote as exc:
        raise ProviderError(str(exc)) from None


def parse_quotes(symbols: list[str], body: object) -> tuple[dict[str, StockQuote], dict[str, str]]:
    """Quotes and per-symbol errors from a single or batch answer."""
    if not isinstance(body, dict):
        raise ProviderError("answer is not an object")
    error = _error_of(body)
    if error:
        raise error
    if len(symbols) == 1 and "symbol" in body:
        return {symbols[0]: parse_quote(symbols[0], body)}, {}
    quotes, errors = {}, {}
    for symbol in symbols:
        entry = body.get(symbol)
        if not isinstance(entry, dict):
            errors[symbol] = "missing from the batch answer"
            continue
        try:
            quotes[symbol] = parse_quote(symbol, entry)
        except ProviderError as exc:
            errors[symbol] = str(exc)
    return quotes, errors


class TwelveDataProvider:
    name = "twelvedata"
    max_batch = 120

    def __init__(self, base_url: str, api_key: str):
        self._api = HttpQuoteApi(base_url, api_key)

    async def fetch(self, symbols: list[str]) -> dict[str, StockQuote]:
        body = await self._api.get_json("/quote", {"symbol": ",".join(symbols),
                                                   "apikey": self._api.api_key})
        quotes, errors = parse_quotes(symbols, body)
        if errors:
            log.warning("twelvedata symbols failed", extra={"errors": errors})
        if not quotes:
            raise ProviderError(f"no quotes: {next(iter(errors.values()), 'empty answer')}")
        return quotes

    async def close(self) -> None:
        await self._api.close()
