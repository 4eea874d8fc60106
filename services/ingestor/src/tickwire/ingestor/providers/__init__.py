"""Quote providers, one adapter per API, built in the configured order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tickwire.ingestor.providers.alphavantage import AlphaVantageProvider
from tickwire.ingestor.providers.base import (FailureKind, FetchResult, ProviderError,
                                              QuoteProvider)
from tickwire.ingestor.providers.replay import ReplayData, ReplayProvider, sample_path
from tickwire.ingestor.providers.simulated import SimulatedProvider
from tickwire.ingestor.providers.twelvedata import TwelveDataProvider
from tickwire.ingestor.settings import IngestorSettings


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Per minute and per UTC day, shared by all replicas; `per_symbol` units per symbol
    fetched."""

    per_minute: int  # 0: unlimited
    per_symbol: int = 1
    per_day: int = 0  # 0: unlimited


def build_providers(settings: IngestorSettings) -> list[tuple[QuoteProvider, RateLimit]]:
    providers: list[tuple[QuoteProvider, RateLimit]] = []
    timeout = settings.request_timeout_seconds
    for name in settings.provider_order():
        if name == "twelvedata":
            providers.append((TwelveDataProvider(settings.twelvedata_base_url,
                                                 settings.twelvedata_api_key, timeout),
                              RateLimit(settings.twelvedata_credits_per_minute,
                                        settings.twelvedata_credits_per_symbol,
                                        settings.twelvedata_credits_per_day)))
        elif name == "alphavantage":
            # One request per symbol: the request budget is a symbol budget.
            providers.append((AlphaVantageProvider(settings.alphavantage_base_url,
                                                   settings.alphavantage_api_key, timeout),
                              RateLimit(settings.alphavantage_requests_per_minute,
                                        per_day=settings.alphavantage_requests_per_day)))
        elif name == "simulated":
            providers.append((SimulatedProvider(seed=settings.simulated_seed), RateLimit(0)))
        elif name == "replay":
            data = ReplayData.load(Path(settings.replay_file) if settings.replay_file
                                   else sample_path())
            providers.append((ReplayProvider(data, settings.replay_speed), RateLimit(0)))
    return providers


__all__ = ["FailureKind", "FetchResult", "ProviderError", "QuoteProvider", "RateLimit",
           "build_providers"]
