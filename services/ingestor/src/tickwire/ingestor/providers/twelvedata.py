"""Twelve Data /quote: many symbols per request.

    GET /quote?symbol=AAPL&apikey=…          → the quote object itself
    GET /quote?symbol=AAPL,MSFT&apikey=…     → {"AAPL": {…quote…}, "MSFT": {…quote…}}

Errors are objects `{"code": 429, "message": …, "status": "error"}`: for the whole request
at the top level (often with HTTP 200), or for one symbol as its entry inside a batch.
"""

from __future__ import annotations

import time

from tickwire.core.models import InvalidQuote, StockQuote, iso_from_unix
from tickwire.ingestor.providers.base import FailureKind, FetchResult, ProviderError
from tickwire.ingestor.providers.http import HttpQuoteApi, number


def _error_of(body: dict, single_symbol: bool) -> ProviderError | None:
    """The error an answer (or batch entry) reports, classified; None if it is no error."""
    if body.get("status") != "error":
        return None
    code = body.get("code")
    message = f"error {code}: {str(body.get('message'))[:120]}"
    if code == 429:
        kind = FailureKind.RATE_LIMITED
    elif isinstance(code, int) and code >= 500:
        kind = FailureKind.TRANSIENT
    elif code in (400, 404) and single_symbol:
        kind = FailureKind.UNKNOWN_SYMBOL  # "**symbol** not found" and the like
    else:
        kind = FailureKind.ERROR
    return ProviderError(message, kind)


def parse_quote(symbol: str, body: object) -> StockQuote:
    if not isinstance(body, dict):
        raise ProviderError(f"entry for {symbol} is not an object", FailureKind.MALFORMED)
    error = _error_of(body, single_symbol=True)
    if error:
        raise error
    if "close" not in body:
        raise ProviderError(f"entry for {symbol} has no 'close'", FailureKind.MALFORMED)
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
        raise ProviderError(str(exc), FailureKind.INVALID_QUOTE) from None


def parse_quotes(symbols: list[str], body: object) -> FetchResult:
    """Quotes and per-symbol failures from a single or batch answer; raises ProviderError
    when the answer as a whole is an error or not in Twelve Data's format."""
    if not isinstance(body, dict):
        raise ProviderError("answer is not an object", FailureKind.MALFORMED)
    error = _error_of(body, single_symbol=len(symbols) == 1)
    if error:
        if error.kind is FailureKind.UNKNOWN_SYMBOL:
            return FetchResult(failures={symbols[0]: error})
        raise error
    if len(symbols) == 1 and symbols[0] not in body:
        entries = {symbols[0]: body}
    elif "close" in body or "symbol" in body:
        raise ProviderError("a single quote answered a batch request", FailureKind.MALFORMED)
    else:
        entries = {key.upper(): value for key, value in body.items() if isinstance(key, str)}
    result = FetchResult()
    for symbol in symbols:
        if symbol not in entries:
            result.failures[symbol] = ProviderError(f"{symbol} missing from the answer",
                                                    FailureKind.MALFORMED)
            continue
        try:
            result.quotes[symbol] = parse_quote(symbol, entries[symbol])
        except ProviderError as exc:
            result.failures[symbol] = exc
    return result


class TwelveDataProvider:
    name = "twelvedata"
    max_batch = 120

    def __init__(self, base_url: str, api_key: str, timeout_seconds: float = 5.0):
        self._api = HttpQuoteApi(base_url, api_key, timeout_seconds)

    async def fetch(self, symbols: list[str]) -> FetchResult:
        body = await self._api.get_json("/quote", {"symbol": ",".join(symbols),
                                                   "apikey": self._api.api_key})
        return parse_quotes(symbols, body)

    async def close(self) -> None:
        await self._api.close()
