"""Malformed HTTP requests become one rate-limited WARNING line, not a traceback each;
the text form shows a record's fields as the JSON form does."""

import logging

from aiohttp.http_exceptions import BadHttpMessage

import orjson

from tickwire.core.logs import JsonFormatter, MalformedRequests, TextFormatter


def record(exc: BaseException | None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc else None
    return logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1,
                             "Error handling request from %s", ("10.0.0.1",), exc_info)


def test_malformed_requests_are_one_line_and_rate_limited():
    now = [100.0]
    filt = MalformedRequests(interval=1.0, clock=lambda: now[0])
    first = record(BadHttpMessage("bad header"))
    assert filt.filter(first)
    assert first.levelno == logging.WARNING and first.exc_info is None
    assert first.getMessage() == "malformed HTTP request from 10.0.0.1: bad header"
    assert [filt.filter(record(BadHttpMessage("x"))) for _ in range(50)] == [False] * 50
    now[0] += 1.5
    later = record(BadHttpMessage("again"))
    assert filt.filter(later) and later.suppressed == 50


def test_handler_errors_keep_their_traceback():
    filt = MalformedRequests()
    bug = record(RuntimeError("a bug"))
    assert filt.filter(bug) and bug.levelno == logging.ERROR and bug.exc_info is not None


def test_text_lines_carry_the_fields_json_lines_do():
    line = logging.LogRecord("tickwire.edge.hub", logging.INFO, __file__, 1,
                             "symbols subscribed upstream", (), None)
    line.count, line.symbols = 2, ["AAPL", "MSFT"]
    text = TextFormatter("tickwire-edge").format(line)
    assert text.endswith("symbols subscribed upstream count=2 symbols=['AAPL', 'MSFT']")
    entry = orjson.loads(JsonFormatter("tickwire-edge").format(line))
    assert (entry["count"], entry["symbols"]) == (2, ["AAPL", "MSFT"])
