"""Parsing the providers' real answer formats, and classifying what goes wrong."""

from __future__ import annotations

import pytest

from tickwire.ingestor.providers.alphavantage import parse_global_quote
from tickwire.ingestor.providers.base import FailureKind, ProviderError
from tickwire.ingestor.providers.http import decode_body
from tickwire.ingestor.providers.twelvedata import parse_quotes

AV_IBM = {"Global Quote": {
    "01. symbol": "IBM", "02. open": "168.9000", "03. high": "169.4900", "04. low": "167.5500",
    "05. price": "168.1200", "06. volume": "3416813", "07. latest trading day": "2024-03-08",
    "08. previous close": "169.2000", "09. change": "-1.0800", "10. change percent": "-0.6383%",
}}


def td_quote(symbol: str, close: str = "170.73") -> dict:
    return {"symbol": symbol, "name": f"{symbol} Inc", "exchange": "NASDAQ", "currency": "USD",
            "datetime": "2024-03-08", "timestamp": 1709904600, "open": "169.00",
            "high": "173.70", "low": "168.94", "close": close, "volume": "76114600",
            "previous_close": "169.12", "change": "1.61", "percent_change": "0.95199",
            "average_volume": "58000000", "is_market_open": False}


def kind_of(call) -> FailureKind:
    with pytest.raises(ProviderError) as caught:
        call()
    return caught.value.kind


def test_alphavantage_global_quote():
    quote = parse_global_quote("IBM", AV_IBM)
    assert (quote.price, quote.open, quote.high, quote.low) == (168.12, 168.9, 169.49, 167.55)
    assert (quote.volume, quote.previous_close) == (3416813, 169.2)
    assert (quote.change, quote.change_percent) == (-1.08, -0.6383)
    assert quote.source == "alphavantage" and quote.symbol == "IBM"


@pytest.mark.parametrize("body, kind", [
    ({"Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls "
              "per minute and 500 calls per day."}, FailureKind.RATE_LIMITED),
    ({"Information": "We have detected your API key as demo and our standard API rate limit "
                     "is 25 requests per day."}, FailureKind.RATE_LIMITED),
    ({"Error Message": "Invalid API call. Please retry or visit the documentation "
                       "(https://www.alphavantage.co/documentation/) for GLOBAL_QUOTE."},
     FailureKind.UNKNOWN_SYMBOL),
    ({"Error Message": "the parameter apikey is invalid or missing."}, FailureKind.ERROR),
    ({"Global Quote": {}}, FailureKind.UNKNOWN_SYMBOL),
    ({}, FailureKind.MALFORMED),
    (["not", "an", "object"], FailureKind.MALFORMED),
    ({"Global Quote": {"01. symbol": "IBM"}}, FailureKind.MALFORMED),
])
def test_alphavantage_failures(body, kind):
    assert kind_of(lambda: parse_global_quote("IBM", body)) is kind


@pytest.mark.parametrize("price", ["0.0000", "-3.2", "NaN", "Infinity", "n/a", None])
def test_alphavantage_junk_prices_are_invalid(price):
    body = {"Global Quote": {**AV_IBM["Global Quote"], "05. price": price}}
    assert kind_of(lambda: parse_global_quote("IBM", body)) is FailureKind.INVALID_QUOTE


def test_twelvedata_single_answer_is_the_quote():
    result = parse_quotes(["AAPL"], td_quote("AAPL"))
    quote = result.quotes["AAPL"]
    assert (quote.price, quote.volume, quote.change_percent) == (170.73, 76114600, 0.95199)
    assert quote.source == "twelvedata" and quote.timestamp.startswith("2024-03-08T13:30:00")
    assert not result.failures


def test_twelvedata_batch_keyed_by_symbol_with_a_per_symbol_error():
    body = {"AAPL": td_quote("AAPL"), "msft": td_quote("MSFT", "406.22"),
            "XXXX": {"code": 404, "message": "**symbol** not found: XXXX. Please specify it "
                                             "correctly.", "status": "error"},
            "JUNK": td_quote("JUNK", "0")}
    result = parse_quotes(["AAPL", "MSFT", "XXXX", "JUNK", "GONE"], body)
    assert {s: q.price for s, q in result.quotes.items()} == {"AAPL": 170.73, "MSFT": 406.22}
    assert {s: e.kind for s, e in result.failures.items()} == {
        "XXXX": FailureKind.UNKNOWN_SYMBOL, "JUNK": FailureKind.INVALID_QUOTE,
        "GONE": FailureKind.MALFORMED}


def test_twelvedata_single_symbol_keyed_answer_is_accepted():
    assert parse_quotes(["AAPL"], {"AAPL": td_quote("AAPL")}).quotes["AAPL"].price == 170.73


@pytest.mark.parametrize("symbols, body, kind", [
    (["AAPL", "MSFT"], {"code": 429, "message": "You have run out of API credits for the "
                                                "current minute.", "status": "error"},
     FailureKind.RATE_LIMITED),
    (["AAPL"], {"code": 429, "message": "out of credits", "status": "error"},
     FailureKind.RATE_LIMITED),
    (["AAPL", "MSFT"], {"code": 401, "message": "**apikey** parameter is incorrect",
                        "status": "error"}, FailureKind.ERROR),
    (["AAPL", "MSFT"], {"code": 500, "message": "internal", "status": "error"},
     FailureKind.TRANSIENT),
    (["AAPL", "MSFT"], td_quote("AAPL"), FailureKind.MALFORMED),
    (["AAPL"], "a string", FailureKind.MALFORMED),
])
def test_twelvedata_whole_request_failures(symbols, body, kind):
    assert kind_of(lambda: parse_quotes(symbols, body)) is kind


def test_twelvedata_unknown_single_symbol_is_a_symbol_failure():
    body = {"code": 400, "message": "**symbol** not found", "status": "error"}
    assert parse_quotes(["XXXX"], body).failures["XXXX"].kind is FailureKind.UNKNOWN_SYMBOL


@pytest.mark.parametrize("close", ["NaN", "-1", "0", "abc"])
def test_twelvedata_junk_single_quote_is_invalid(close):
    result = parse_quotes(["AAPL"], td_quote("AAPL", close))
    assert not result.quotes and result.failures["AAPL"].kind is FailureKind.INVALID_QUOTE


@pytest.mark.parametrize("body", [b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>",
                                  b"  <html>maintenance</html>", b'{"AAPL": {"close": "1"',
                                  b"", b"NaN"])
def test_html_and_broken_json_are_malformed(body):
    assert kind_of(lambda: decode_body(body)) is FailureKind.MALFORMED


def test_json_body_decodes():
    assert decode_body(b' {"a": 1}') == {"a": 1}
