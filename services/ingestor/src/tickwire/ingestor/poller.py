"""The polling loop: fetch this replica's active symbols, busiest first, with failover."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from prometheus_client import Counter, Histogram
from redis.exceptions import RedisError

from tickwire.core.models import iso_from_unix
from tickwire.ingestor.assignments import ActiveSymbols
from tickwire.ingestor.providers import ProviderError, QuoteProvider
from tickwire.ingestor.publisher import TickPublisher

log = logging.getLogger(__name__)

PROVIDER_REQUESTS = Counter("tickwire_ingestor_provider_requests_total",
                            "Requests to quote providers", ["provider", "outcome"])
TICKS_PUBLISHED = Counter("tickwire_ingestor_ticks_published_total", "Ticks published")
INGEST_LATENCY = Histogram("tickwire_ingestor_ingest_latency_seconds",
                           "From the start of a fetch to the tick being published",
                           buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


@dataclass
class ProviderStatus:
    name: str
    requests: int = 0
    failures: int = 0
    last_success: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "requests": self.requests,
            "failures": self.failures,
            "lastSuccess": iso_from_unix(self.last_success) if self.last_success else None,
            "lastError": self.last_error,
            "lastErrorAt": iso_from_unix(self.last_error_at) if self.last_error_at else None,
        }


@dataclass
class Poller:
    providers: list[QuoteProvider]
    active: ActiveSymbols
    publisher: TickPublisher
    interval: float
    status: dict[str, ProviderStatus] = field(default_factory=dict)
    redis_ok: bool = True

    def __post_init__(self) -> None:
        self.status = {p.name: ProviderStatus(p.name) for p in self.providers}

    async def run(self) -> None:
        polled: set[str] = set()
        while True:
            started = time.monotonic()
            wanted = self.active.symbols()
            for gone in polled - wanted.keys():
                self.publisher.forget(gone)
            polled = set(wanted)
            if wanted:
                busiest_first = sorted(wanted, key=lambda s: (-wanted[s], s))
                await self.poll_once(busiest_first)
            await asyncio.sleep(max(0.05, self.interval - (time.monotonic() - started)))

    async def poll_once(self, symbols: list[str]) -> None:
        """Each symbol from the first provider that answers for it."""
        remaining = list(symbols)
        for provider in self.providers:
            if not remaining:
                return
            batch = getattr(provider, "max_batch", None) or len(remaining)
            served: set[str] = set()
            for start in range(0, len(remaining), batch):
                served |= await self._fetch_and_publish(provider, remaining[start:start + batch])
            remaining = [s for s in remaining if s not in served]

    async def _fetch_and_publish(self, provider: QuoteProvider, symbols: list[str]) -> set[str]:
        """The symbols this provider answered for (published, or unchanged)."""
        status = self.status[provider.name]
        status.requests += 1
        started = time.monotonic()
        try:
            quotes = await provider.fetch(symbols)
        except ProviderError as exc:
            status.failures += 1
            status.last_error, status.last_error_at = str(exc), time.time()
            PROVIDER_REQUESTS.labels(provider.name, "rate_limited" if exc.rate_limited else "error").inc()
            log.warning("provider fetch failed", extra={"provider": provider.name, "error": str(exc)})
            return set()
        PROVIDER_REQUESTS.labels(provider.name, "ok").inc()
        status.last_success = time.time()
        served = set()
        for symbol, quote in quotes.items():
            try:
                tick = await self.publisher.publish(quote)
                self.redis_ok = True
            except (RedisError, OSError) as exc:
                self.redis_ok = False
                log.warning("publish failed", extra={"symbol": symbol, "error": repr(exc)})
                continue
            served.add(symbol)
            if tick is not None:
                TICKS_PUBLISHED.inc()
                INGEST_LATENCY.observe(time.monotonic() - started)
        return served
