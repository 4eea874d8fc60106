"""The port every quote source implements."""

from __future__ import annotations

from typing import Protocol

from tickwire.core.models import StockQuote


class ProviderError(Exception):
    """A fetch that failed. `transient` failures (timeouts, 5xx) are worth retrying."""

    def __init__(self, message: str, transient: bool = False, rate_limited: bool = False):
        super().__init__(message)
        self.transient = transient
        self.rate_limited = rate_limited


class QuoteProvider(Protocol):
    name: str

    async def fetch(self, symbols: list[str]) -> dict[str, StockQuote]:
        """Quotes for the symbols it could get; raises ProviderError when none came back."""
        ...

    async def close(self) -> None: ...
