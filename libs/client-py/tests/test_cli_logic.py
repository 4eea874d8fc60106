"""Pure logic of the `tickwire` command: endpoints, formatting, option parsing."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tickwire.client.cli import parser
from tickwire.client.cli.endpoints import Endpoints
from tickwire.client.cli.formatting import age_seconds, change, quote_line, seconds
from tickwire.client.cli.status import budget


def endpoints(url: str) -> Endpoints:
    return Endpoints(url, "http://r", "http://i", (), None)


def test_the_socket_url_follows_the_rest_url():
    assert endpoints("http://127.0.0.1:8080").ws_url == "ws://127.0.0.1:8080/ws"
    assert endpoints("https://quotes.example.com/").ws_url == "wss://quotes.example.com/ws"
    assert endpoints("https://example.com/edge").ws_url == "wss://example.com/edge/ws"
    with pytest.raises(ValueError, match="--url"):
        endpoints("ws://127.0.0.1:8080/ws").ws_url


def test_quotes_read_as_one_line():
    body = {"symbol": "AAPL", "price": 1234.5, "change": -1.25, "changePercent": -0.1012,
            "ageMs": 1500, "stale": True, "source": "simulated"}
    line = quote_line(body, "edge-1")
    assert line.split()[:4] == ["AAPL", "1,234.50", "-1.25", "(-0.10%)"]
    assert "age 1.5 s" in line and "STALE" in line and line.endswith("edge edge-1")
    assert change({}) == "–" and seconds(None) == "–" and seconds(90) == "2 min"


def test_age_is_measured_from_the_quote_timestamp():
    now = datetime(2026, 1, 1, 12, 0, 10, tzinfo=timezone.utc)
    assert age_seconds({"timestamp": "2026-01-01T12:00:00Z"}, now) == 10
    assert age_seconds({"timestamp": "yesterday"}, now) is None


def test_budgets_of_any_shape_are_shown():
    assert budget(None, {}) == "unlimited"
    assert budget({"perMinute": 8, "remaining": 3.0}, {"rateLimitedForSeconds": 12}) \
        == "perMinute 8, remaining 3.0 (rate limited 12 s)"


def test_endpoint_options_work_before_and_after_the_command(monkeypatch):
    monkeypatch.setenv("TICKWIRE_CLI_URL", "http://from-env:1")
    assert parser().parse_args(["quote", "AAPL"]).url == "http://from-env:1"
    assert parser().parse_args(["--url", "http://a:1", "quote", "AAPL"]).url == "http://a:1"
    assert parser().parse_args(["quote", "AAPL", "--url", "http://b:1"]).url == "http://b:1"
    with pytest.raises(SystemExit):
        parser().parse_args(["watch", "AAPL", "--count", "0"])
