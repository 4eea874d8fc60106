"""Alpha Vantage GLOBAL_QUOTE: one symbol per request, numbered string fields.

    GET /query?function=GLOBAL_QUOTE&symbol=IBM&apikey=…
    {"Global Quote": {"01. symbol": "IBM", "02. open": "134.5", …, "05. price": "135.1", …}}

Alpha Vantage answers HTTP 200 for everything; what went wrong is in the body:
`{"Note": …}` / `{"Information": …}` when the key is over its limits, `{"Error Message": …}`
for a bad symbol (or key), `{"Global Quote": {}}` for a symbol it does not know.
"""

from __future__ import annotations

import time

from tickwire.core.models import InvalidQuote, StockQuote, iso_from_unix
from tickwire.ingestor.providers.base import FailureKind, FetchResult, ProviderError
from tickwire.ingestor.providers.http import HttpQuoteApi, number


def parse_global_quote(symbol: str, body: object) -> StockQuote:
    """The quote in a GLOBAL_QUOTE answer; ProviderError says why there is none."""
    if not isinstance(body, dict):
        raise ProviderError("answer is not an object", FailureKind.MALFORMED)
    for limit_field in ("Note", "Information"):
        if limit_field in body:
            raise ProviderError(f"rate limited: {str(body[limit_field])[:120]}",
                                FailureKind.RATE_LIMITED)
    if "Error Message" in body:
        message = str(body["Error Message"])
        # The same field reports a bad key and a bad symbol; only the key is the provider's fault.
        kind = FailureKind.ERROR if "apikey" in message.lower() else FailureKind.UNKNOWN_SYMBOL
        raise ProviderError(f"error: {message[:120]}", kind)
    quote = body.get("Global Quote")
    if not isinstance(quote, dict):
        raise ProviderError("no 'Global Quote' in the answer", FailureKind.MALFORMED)
    if not quote:
        raise ProviderError(f"no quote for {symbol}", FailureKind.UNKNOWN_SYMBOL)
    if "05. price" not in quote:
        raise ProviderError("'Global Quote' without '05. price'", FailureKind.MALFORMED)
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
        raise ProviderError(str(exc), FailureKind.INVALID_QUOTE) from None


class AlphaVantageProvider:
    name = "alphavantage"
    max_batch = 1

    def __init__(self, base_url: str, api_key: str, timeout_seconds: float = 5.0):
        self._api = HttpQuoteApi(base_url, api_key, timeout_seconds)

    async def fetch(self, symbols: list[str]) -> FetchResult:
        (symbol,) = symbols
        body = await self._api.get_json(
            "/query", {"function": "GLOBAL_QUOTE", "symbol": symbol, "apikey": self._api.api_key})
        try:
            return FetchResult(quotes={symbol: parse_global_quote(symbol, body)})
        except ProviderError as exc:
            if exc.kind in (FailureKind.UNKNOWN_SYMBOL, FailureKind.INVALID_QUOTE):
                return FetchResult(failures={symbol: exc})
            raise

    async def close(self) -> None:
        await self._api.close()
