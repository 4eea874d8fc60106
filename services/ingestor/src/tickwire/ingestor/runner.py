"""One provider behind its guards: shared rate budget, circuit breaker, retries.

`ProviderRunner.fetch` takes symbols in priority order and sorts each into
- quotes: valid quotes it got;
- failed: the provider failed for them (an error, junk, an open circuit, a spent daily
  quota); the caller tries the next provider and, if all fail, may flag the data stale;
- neither (skipped): not tried for lack of budget or because the provider said it is rate
  limited; the next provider is tried, and the symbol stays due.

Budget is spent in the given order, so the most deserving symbols get it; a provider with
a daily quota spends it on the most-watched symbols first (by subscribers, then the given
order), and once the day's quota is spent it is not asked again until the day resets.
Each request, retries included, is paid from the shared budgets; a retry that cannot be
paid is not made.
Retries (tenacity: exponential backoff with full jitter) are for transient failures only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from redis.exceptions import RedisError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from tickwire.core.models import StockQuote, iso_from_unix
from tickwire.core.telemetry import FLOW, TICK
from tickwire.ingestor.breaker import CircuitBreaker, CircuitState, Permit
from tickwire.ingestor.budget import ProviderBudget
from tickwire.ingestor.metrics import (BUDGET_REMAINING, CIRCUIT_STATE, DAY_BUDGET_LEFT,
                                       PROVIDER_REQUESTS, PROVIDER_RETRIES, REJECTED_QUOTES)
from tickwire.ingestor.providers.base import (UNHEALTHY, FailureKind, FetchResult, ProviderError,
                                              QuoteProvider)

log = logging.getLogger(__name__)
TRACER = trace.get_tracer("tickwire.ingestor")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3
    backoff_seconds: float = 0.2
    backoff_max_seconds: float = 2.0


@dataclass
class ProviderOutcome:
    quotes: dict[str, StockQuote] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # symbol → why

    def merge(self, other: ProviderOutcome) -> None:
        self.quotes.update(other.quotes)
        self.failed.update(other.failed)


class _Unaffordable(Exception):
    """A retry the budget cannot pay for; carries the failure that asked for it."""

    def __init__(self, error: ProviderError):
        super().__init__(str(error))
        self.error = error


# Per-symbol failures that, when a request brought no quote at all, count against the provider.
SICK = UNHEALTHY | {FailureKind.INVALID_QUOTE}


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, ProviderError) and exc.transient


class ProviderRunner:
    def __init__(self, provider: QuoteProvider, budget: ProviderBudget, breaker: CircuitBreaker,
                 retry: RetryPolicy = RetryPolicy(), rate_limited_pause: float = 15.0,
                 concurrency: int = 4, clock: Callable[[], float] = time.monotonic):
        self.provider = provider
        self.name = provider.name
        self.budget = budget
        self.breaker = breaker
        self.retry = retry
        self.rate_limited_pause = rate_limited_pause
        self._clock = clock
        self._requests = asyncio.Semaphore(concurrency)
        self._paused_until = 0.0
        self._day_spent_logged: float | None = None
        self.requests = 0
        self.failures = 0
        self.last_success: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        CIRCUIT_STATE.labels(self.name).set(CircuitState.CLOSED.gauge)
        PROVIDER_RETRIES.labels(self.name)  # exported as 0 from the start

    async def fetch(self, symbols: list[str],
                    subscribers: Mapping[str, int] | None = None) -> ProviderOutcome:
        """`symbols` in priority order, `subscribers` their watchers. Raises
        RedisError/OSError when the shared budget cannot be read."""
        outcome = ProviderOutcome()
        if self._clock() < self._paused_until:
            return outcome
        if (spent_until := self.budget.day_spent_until) is not None:
            # Failed, not skipped: with no provider left the data is flagged stale, and
            # the symbols are tried again after a poll interval, not on every step.
            reason = f"{self.name}: daily quota spent until {iso_from_unix(spent_until)}"
            outcome.failed.update({s: reason for s in symbols})
            return outcome
        if self.budget.daily and subscribers:
            symbols = sorted(symbols, key=lambda s: -subscribers.get(s, 0))
        permit = self.breaker.acquire()
        if permit is None:
            trace.get_current_span().add_event("circuit open", {"tickwire.provider": self.name})
            outcome.failed.update({s: f"{self.name}: circuit open" for s in symbols})
            return outcome
        # Half-open: one probe request; the rest wait for the verdict on a healthier provider.
        wanted = symbols if permit is Permit.FULL else symbols[:self.provider.max_batch]
        outcome.failed.update({s: f"{self.name}: circuit half-open" for s in symbols[len(wanted):]})
        try:
            granted = await self.budget.take(len(wanted))
        except BaseException:
            self.breaker.release()
            raise
        self._show_budget()
        if granted == 0:
            self.breaker.release()
            return outcome
        chosen = wanted[:granted]
        size = self.provider.max_batch
        batches = [chosen[i:i + size] for i in range(0, len(chosen), size)]
        for result in await asyncio.gather(*(self._batch(b) for b in batches)):
            outcome.merge(result)
        CIRCUIT_STATE.labels(self.name).set(self.breaker.state.gauge)
        return outcome

    async def _batch(self, batch: list[str]) -> ProviderOutcome:
        outcome = ProviderOutcome()
        async with self._requests:
            try:
                result = await self._request(batch)
            except ProviderError as exc:
                await self._whole_request_failed(exc, batch, outcome)
                return outcome
            except Exception as exc:  # an adapter bug must not stop the poll loop
                log.exception("provider adapter failed", extra={"provider": self.name})
                await self._whole_request_failed(
                    ProviderError(f"adapter failed: {exc!r:.120}", FailureKind.ERROR), batch, outcome)
                return outcome
        if result.quotes:
            self.last_success = time.time()
        outcome.quotes.update(result.quotes)
        rate_limited = False
        for symbol, error in result.failures.items():
            if error.rate_limited:
                rate_limited = True
                continue
            outcome.failed[symbol] = f"{self.name}: {error}"
            if error.rejected:
                self._reject(error, [symbol])
        if rate_limited:
            await self._rate_limited(ProviderError("rate limited inside a batch",
                                                   FailureKind.RATE_LIMITED))
        kinds = {error.kind for error in result.failures.values()}
        if result.quotes or kinds == {FailureKind.UNKNOWN_SYMBOL}:
            self.breaker.record_success()
        elif kinds & SICK:
            self._count_failure(next(e for e in result.failures.values() if e.kind in SICK))
        else:
            self.breaker.release()
        return outcome

    async def _request(self, batch: list[str]) -> FetchResult:
        """`_attempts` in a CLIENT span: provider, symbols, outcome, one event per failed try."""
        with TRACER.start_as_current_span("provider fetch", kind=SpanKind.CLIENT, attributes={
                FLOW: TICK, "tickwire.provider": self.name, "tickwire.symbols": batch[:20],
                "tickwire.symbol_count": len(batch)}) as span:
            try:
                result = await self._attempts(batch)
            except ProviderError as exc:
                span.set_attribute("tickwire.outcome", str(exc.kind))
                span.set_status(StatusCode.ERROR, str(exc)[:200])
                raise
            span.set_attributes({"tickwire.outcome": "ok", "tickwire.quotes": len(result.quotes),
                                 "tickwire.failed_symbols": len(result.failures)})
            return result

    async def _attempts(self, batch: list[str]) -> FetchResult:
        """One request with retries for transient failures, each paid from the budget."""
        previous: ProviderError | None = None
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=wait_random_exponential(multiplier=self.retry.backoff_seconds,
                                         max=self.retry.backoff_max_seconds),
            retry=retry_if_exception(_transient),
            before_sleep=lambda _: PROVIDER_RETRIES.labels(self.name).inc(),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if previous is not None and not await self._afford_retry(batch):
                        raise _Unaffordable(previous)
                    self.requests += 1
                    try:
                        result = await self.provider.fetch(batch)
                    except ProviderError as exc:
                        previous = exc
                        PROVIDER_REQUESTS.labels(self.name, str(exc.kind)).inc()
                        trace.get_current_span().add_event("attempt failed", {
                            "tickwire.outcome": str(exc.kind), "error": str(exc)[:200]})
                        raise
                    PROVIDER_REQUESTS.labels(self.name, "ok").inc()
        except _Unaffordable as exc:
            raise exc.error from None
        return result

    async def _afford_retry(self, batch: list[str]) -> bool:
        try:
            return await self.budget.take(len(batch), minimum=len(batch)) > 0
        except (RedisError, OSError):
            return False  # the budget cannot be checked: no retry rather than an unpaid one

    async def _whole_request_failed(self, error: ProviderError, batch: list[str],
                                    outcome: ProviderOutcome) -> None:
        if error.rate_limited:
            self.breaker.release()
            await self._rate_limited(error)
            return
        outcome.failed.update({s: f"{self.name}: {error}" for s in batch})
        if error.rejected:
            self._reject(error, batch)
        if error.kind is FailureKind.UNKNOWN_SYMBOL:
            self.breaker.record_success()
            return
        self._count_failure(error)
        log.warning("provider request failed", extra={
            "provider": self.name, "symbols": batch[:10], "kind": str(error.kind),
            "error": str(error), "circuit": self.breaker.state.value})

    def _count_failure(self, error: ProviderError) -> None:
        before = self.breaker.state
        self.breaker.record_failure()
        self.failures += 1
        self._note_error(error)
        if self.breaker.state is CircuitState.OPEN and before is not CircuitState.OPEN:
            log.warning("circuit opened", extra={
                "provider": self.name, "consecutive_failures": self.breaker.consecutive_failures,
                "retry_in_s": self.breaker.reset_seconds})

    def _reject(self, error: ProviderError, symbols: list[str]) -> None:
        REJECTED_QUOTES.labels(self.name, str(error.kind)).inc(len(symbols))
        self._note_error(error)
        log.warning("rejected provider answer", extra={
            "provider": self.name, "symbols": symbols[:10], "reason": str(error.kind),
            "error": str(error)})

    async def _rate_limited(self, error: ProviderError) -> None:
        self._note_error(error)
        self._paused_until = self._clock() + self.rate_limited_pause
        log.warning("provider rate limited; failing over", extra={
            "provider": self.name, "error": str(error), "pause_s": self.rate_limited_pause})
        try:
            await self.budget.drain()
        except (RedisError, OSError) as exc:
            log.warning("could not empty the shared budget", extra={
                "provider": self.name, "error": repr(exc)})
        self._show_budget()

    def _note_error(self, error: ProviderError) -> None:
        self.last_error, self.last_error_at = f"{error.kind}: {error}", time.time()

    def _show_budget(self) -> None:
        if self.budget.last_remaining is not None:
            BUDGET_REMAINING.labels(self.name).set(self.budget.last_remaining)
        if (left := self.budget.day_left) is not None:
            DAY_BUDGET_LEFT.labels(self.name).set(left)
        spent_until = self.budget.day_spent_until
        if spent_until is not None and spent_until != self._day_spent_logged:
            self._day_spent_logged = spent_until
            log.warning("daily quota spent; failing over until it resets", extra={
                "provider": self.name, "resets_at": iso_from_unix(spent_until)})

    async def describe(self) -> dict:
        """The state /api/providers shows (reads the shared budget from Redis)."""
        CIRCUIT_STATE.labels(self.name).set(self.breaker.state.gauge)
        budget = await self.budget.describe()
        self._show_budget()
        paused = self._paused_until - self._clock()
        return {
            "name": self.name,
            "circuit": self.breaker.state.value,
            "consecutiveFailures": self.breaker.consecutive_failures,
            "budget": budget,
            "rateLimitedForSeconds": round(paused, 1) if paused > 0 else 0,
            "requests": self.requests,
            "failures": self.failures,
            "lastSuccess": iso_from_unix(self.last_success) if self.last_success else None,
            "lastError": self.last_error,
            "lastErrorAt": iso_from_unix(self.last_error_at) if self.last_error_at else None,
        }

    async def close(self) -> None:
        await self.provider.close()
