"""The port every quote source implements, and how its failures are classified."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from tickwire.core.models import StockQuote


class FailureKind(StrEnum):
    TRANSIENT = "transient"            # timeout, connection error, 5xx: worth retrying
    RATE_LIMITED = "rate_limited"      # the provider says slow down: fail over, don't retry
    ERROR = "error"                    # the provider refused the request (bad key, 4xx)
    MALFORMED = "malformed"            # not the provider's format (HTML, bad JSON, wrong shape)
    UNKNOWN_SYMBOL = "unknown_symbol"  # the provider has nothing for this one symbol
    INVALID_QUOTE = "invalid_quote"    # a quote with junk values (price <= 0, NaN, not numbers)


# Answers that are junk: never published, logged and counted as rejected.
REJECTED = frozenset({FailureKind.MALFORMED, FailureKind.INVALID_QUOTE})
# Whole-request failures that say the provider is unhealthy (they feed its circuit breaker).
UNHEALTHY = frozenset({FailureKind.TRANSIENT, FailureKind.ERROR, FailureKind.MALFORMED})


class ProviderError(Exception):
    """A failed fetch, of a whole request (raised) or of one symbol (in FetchResult)."""

    def __init__(self, message: str, kind: FailureKind = FailureKind.ERROR):
        super().__init__(message)
        self.kind = kind

    @property
    def transient(self) -> bool:
        return self.kind is FailureKind.TRANSIENT

    @property
    def rate_limited(self) -> bool:
        return self.kind is FailureKind.RATE_LIMITED

    @property
    def rejected(self) -> bool:
        return self.kind in REJECTED


@dataclass
class FetchResult:
    """What one request brought back: valid quotes, and why each other symbol has none."""

    quotes: dict[str, StockQuote] = field(default_factory=dict)
    failures: dict[str, ProviderError] = field(default_factory=dict)


class QuoteProvider(Protocol):
    name: str
    max_batch: int  # symbols per request

    async def fetch(self, symbols: list[str]) -> FetchResult:
        """One request for at most `max_batch` symbols. Raises ProviderError when the whole
        request failed; per-symbol failures are in the result."""
        ...

    async def close(self) -> None: ...
