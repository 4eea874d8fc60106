"""A provider behind its guards: retries, breaker, budget, rate limits, junk.

The provider and the budget are in-memory stand-ins here; the Redis bucket itself is
tested against real Redis in tests/integration/test_ingestor_redis.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tickwire.core.models import StockQuote
from tickwire.ingestor.breaker import CircuitBreaker, CircuitState
from tickwire.ingestor.metrics import PROVIDER_RETRIES, REJECTED_QUOTES
from tickwire.ingestor.providers.base import FailureKind, FetchResult, ProviderError
from tickwire.ingestor.runner import ProviderRunner, RetryPolicy

FAST = RetryPolicy(attempts=3, backoff_seconds=0.001, backoff_max_seconds=0.002)


def quote(symbol: str, price: float = 10.0) -> StockQuote:
    return StockQuote(symbol, price, 0.0, 0.0, 1, price, price, price, price,
                      "2024-03-08T14:30:00.000Z", "fake")


class FakeProvider:
    """Answers with `answer(symbols)`: a FetchResult, or an exception to raise."""

    name = "fake"

    def __init__(self, answer: Callable[[list[str]], FetchResult | Exception], max_batch: int = 10):
        self.answer = answer
        self.max_batch = max_batch
        self.calls: list[list[str]] = []

    async def fetch(self, symbols: list[str]) -> FetchResult:
        self.calls.append(list(symbols))
        result = self.answer(symbols)
        if isinstance(result, Exception):
            raise result
        return result

    async def close(self) -> None:
        return None


class FakeBudget:
    """ProviderBudget's interface: `tokens` per call (None: unlimited); `daily` says a daily
    quota applies, `spent_until` that it is spent."""

    def __init__(self, tokens: float | None = None, daily: bool = False):
        self.tokens = tokens
        self.drained = 0
        self.last_remaining = tokens
        self.daily = daily
        self.day_left = None
        self.day_spent_until: float | None = None

    @property
    def limited(self) -> bool:
        return self.tokens is not None

    async def take(self, units: int, minimum: int = 1) -> int:
        if self.tokens is None:
            return units
        granted = min(units, int(self.tokens))
        granted = granted if granted >= minimum else 0
        self.tokens -= granted
        self.last_remaining = self.tokens
        return granted

    async def describe(self) -> dict | None:
        return {"remaining": self.tokens} if self.tokens is not None else None

    async def drain(self) -> None:
        self.drained += 1
        if self.tokens is not None:
            self.tokens = 0


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def runner(provider: FakeProvider, budget: FakeBudget | None = None, clock: Clock | None = None,
           threshold: int = 2) -> ProviderRunner:
    clock = clock or Clock()
    return ProviderRunner(provider, budget or FakeBudget(), CircuitBreaker(threshold, 30, clock=clock),
                          FAST, rate_limited_pause=10, clock=clock)


def ok(symbols: list[str]) -> FetchResult:
    return FetchResult(quotes={s: quote(s) for s in symbols})


def retries() -> float:
    return PROVIDER_RETRIES.labels("fake")._value.get()


def rejected(reason: FailureKind) -> float:
    return REJECTED_QUOTES.labels("fake", str(reason))._value.get()


def skipped(outcome, asked: list[str]) -> set[str]:
    """Asked for, neither got nor failed: left due for the next provider."""
    return set(asked) - set(outcome.quotes) - set(outcome.failed)


async def test_success_in_batches():
    provider = FakeProvider(ok, max_batch=2)
    outcome = await runner(provider).fetch(["A", "B", "C"])
    assert set(outcome.quotes) == {"A", "B", "C"} and not outcome.failed and not skipped(outcome, ["A", "B", "C"])
    assert sorted(map(len, provider.calls)) == [1, 2]


async def test_transient_failures_are_retried_then_succeed():
    answers = iter([ProviderError("HTTP 503", FailureKind.TRANSIENT),
                    ProviderError("timed out", FailureKind.TRANSIENT)])
    provider = FakeProvider(lambda s: next(answers, None) or ok(s))
    before = retries()
    outcome = await runner(provider).fetch(["A"])
    assert set(outcome.quotes) == {"A"} and len(provider.calls) == 3
    assert retries() - before == 2


@pytest.mark.parametrize("kind", [FailureKind.ERROR, FailureKind.MALFORMED,
                                  FailureKind.RATE_LIMITED])
async def test_other_failures_are_not_retried(kind):
    provider = FakeProvider(lambda s: ProviderError("no", kind))
    before = retries()
    await runner(provider).fetch(["A"])
    assert len(provider.calls) == 1 and retries() == before


async def test_retries_are_paid_from_the_budget():
    provider = FakeProvider(lambda s: ProviderError("HTTP 502", FailureKind.TRANSIENT))
    budget = FakeBudget(tokens=2)
    outcome = await runner(provider, budget).fetch(["A"])
    assert len(provider.calls) == 2  # the third try could not be paid for
    assert "A" in outcome.failed and budget.tokens == 0


async def test_budget_goes_to_the_first_symbols_rest_skipped():
    provider = FakeProvider(ok)
    outcome = await runner(provider, FakeBudget(tokens=2)).fetch(["HOT", "WARM", "COLD"])
    assert set(outcome.quotes) == {"HOT", "WARM"} and skipped(outcome, ["HOT", "WARM", "COLD"]) == {"COLD"}
    outcome = await runner(provider, FakeBudget(tokens=0)).fetch(["HOT"])
    assert skipped(outcome, ["HOT"]) == {"HOT"} and not outcome.failed


async def test_breaker_opens_and_open_circuit_fails_without_a_request():
    clock = Clock()
    provider = FakeProvider(lambda s: ProviderError("HTTP 401", FailureKind.ERROR))
    r = runner(provider, clock=clock)
    for _ in range(2):
        await r.fetch(["A"])
    assert r.breaker.state is CircuitState.OPEN
    outcome = await r.fetch(["A", "B"])
    assert len(provider.calls) == 2 and set(outcome.failed) == {"A", "B"}
    assert "circuit open" in outcome.failed["A"]
    provider.answer = ok
    clock.now += 30
    outcome = await r.fetch(["A", "B"])  # the probe: one request, closes the circuit
    assert set(outcome.quotes) == {"A", "B"} and r.breaker.state is CircuitState.CLOSED


async def test_half_open_probe_is_a_single_batch():
    clock = Clock()
    provider = FakeProvider(lambda s: ProviderError("HTTP 500", FailureKind.TRANSIENT), max_batch=1)
    r = runner(provider, clock=clock)
    for _ in range(2):
        await r.fetch(["A"])
    provider.answer, provider.calls = ok, []
    clock.now += 30
    outcome = await r.fetch(["A", "B", "C"])
    assert provider.calls == [["A"]] and set(outcome.quotes) == {"A"}
    assert set(outcome.failed) == {"B", "C"}


async def test_rate_limited_answer_fails_over_pauses_and_drains_the_shared_bucket():
    clock = Clock()
    provider = FakeProvider(lambda s: ProviderError("rate limited: Note", FailureKind.RATE_LIMITED))
    budget = FakeBudget(tokens=5)
    r = runner(provider, budget, clock)
    outcome = await r.fetch(["A", "B"])
    assert skipped(outcome, ["A", "B"]) == {"A", "B"} and not outcome.failed
    assert budget.drained == 1 and r.breaker.state is CircuitState.CLOSED
    outcome = await r.fetch(["A"])
    assert skipped(outcome, ["A"]) == {"A"} and len(provider.calls) == 1  # paused: not asked
    clock.now += 10
    await r.fetch(["A"])
    assert len(provider.calls) == 1  # the pause is over, but the bucket is still empty
    budget.tokens = 1  # refilled
    await r.fetch(["A"])
    assert len(provider.calls) == 2


async def test_junk_is_rejected_counted_and_fails_over():
    provider = FakeProvider(lambda s: ProviderError("HTML answer", FailureKind.MALFORMED))
    before = rejected(FailureKind.MALFORMED)
    outcome = await runner(provider).fetch(["A", "B"])
    assert set(outcome.failed) == {"A", "B"} and not outcome.quotes
    assert rejected(FailureKind.MALFORMED) - before == 2


async def test_per_symbol_junk_and_unknown_symbols():
    def answer(symbols):
        return FetchResult(quotes={"A": quote("A")}, failures={
            "B": ProviderError("price 0", FailureKind.INVALID_QUOTE),
            "C": ProviderError("not found", FailureKind.UNKNOWN_SYMBOL)})
    before = rejected(FailureKind.INVALID_QUOTE)
    r = runner(FakeProvider(answer))
    outcome = await r.fetch(["A", "B", "C"])
    assert set(outcome.quotes) == {"A"} and set(outcome.failed) == {"B", "C"}
    assert rejected(FailureKind.INVALID_QUOTE) - before == 1
    assert r.breaker.consecutive_failures == 0


async def test_only_junk_counts_against_the_provider_unknown_symbols_do_not():
    r = runner(FakeProvider(lambda s: FetchResult(failures={
        s[0]: ProviderError("NaN", FailureKind.INVALID_QUOTE)})))
    await r.fetch(["A"])
    assert r.breaker.consecutive_failures == 1
    r = runner(FakeProvider(lambda s: FetchResult(failures={
        s[0]: ProviderError("not found", FailureKind.UNKNOWN_SYMBOL)})))
    for _ in range(3):
        await r.fetch(["A"])
    assert r.breaker.state is CircuitState.CLOSED


async def test_adapter_bug_is_a_failure_not_a_crash():
    r = runner(FakeProvider(lambda s: KeyError("oops")))
    outcome = await r.fetch(["A"])
    assert "A" in outcome.failed and r.failures == 1


async def test_describe():
    r = runner(FakeProvider(ok), FakeBudget(tokens=3))
    await r.fetch(["A"])
    described = await r.describe()
    assert described["circuit"] == "closed" and described["budget"]["remaining"] == 2
    assert described["lastSuccess"] and described["lastError"] is None


async def test_a_daily_quota_goes_to_the_most_watched_symbols_first():
    provider = FakeProvider(ok, max_batch=1)
    outcome = await runner(provider, FakeBudget(tokens=2, daily=True)).fetch(
        ["QUIET", "BUSY", "BUSIEST"], {"QUIET": 1, "BUSY": 5, "BUSIEST": 9})
    assert provider.calls == [["BUSIEST"], ["BUSY"]] and skipped(outcome, ["QUIET"]) == {"QUIET"}
    # Without a daily quota the scheduler's order (age and subscribers) stands.
    provider = FakeProvider(ok, max_batch=1)
    await runner(provider, FakeBudget(tokens=2)).fetch(["QUIET", "BUSY", "BUSIEST"],
                                                       {"QUIET": 1, "BUSY": 5, "BUSIEST": 9})
    assert provider.calls == [["QUIET"], ["BUSY"]]


async def test_a_spent_day_is_not_asked_until_it_resets():
    provider = FakeProvider(ok)
    budget = FakeBudget(tokens=100, daily=True)
    budget.day_spent_until = 86_400.0
    outcome = await runner(provider, budget).fetch(["A", "B"])
    assert provider.calls == [] and not outcome.quotes
    assert outcome.failed == {s: "fake: daily quota spent until 1970-01-02T00:00:00.000Z"
                              for s in ("A", "B")}
    assert budget.tokens == 100  # nothing was taken either
