"""Quote providers, one adapter per API, built in the configured order."""

from __future__ import annotations

from tickwire.ingestor.providers.alphavantage import AlphaVantageProvider
from tickwire.ingestor.providers.base import ProviderError, QuoteProvider
from tickwire.ingestor.providers.simulated import SimulatedProvider
from tickwire.ingestor.providers.twelvedata import TwelveDataProvider
from tickwire.ingestor.settings import IngestorSettings


def build_providers(settings: IngestorSettings) -> list[QuoteProvider]:
    providers: list[QuoteProvider] = []
    for name in settings.provider_order():
        if name == "twelvedata":
            providers.append(TwelveDataProvider(settings.twelvedata_base_url,
                                                settings.twelvedata_api_key))
        elif name == "alphavantage":
            providers.append(AlphaVantageProvider(settings.alphavantage_base_url,
                                                  settings.alphavantage_api_key))
        elif name == "simulated":
            providers.append(SimulatedProvider(seed=settings.simulated_seed))
    return providers


__all__ = ["ProviderError", "QuoteProvider", "build_providers"]
