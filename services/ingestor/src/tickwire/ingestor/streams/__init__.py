"""Upstream WebSocket streams beside polling: built in the configured order."""

from __future__ import annotations

import redis.asyncio as aioredis

from tickwire.ingestor.settings import IngestorSettings
from tickwire.ingestor.streams.alpaca import AlpacaAdapter
from tickwire.ingestor.streams.base import StreamAdapter
from tickwire.ingestor.streams.connection import StreamConnection
from tickwire.ingestor.streams.finnhub import FinnhubAdapter
from tickwire.ingestor.streams.lease import ConnectionLease
from tickwire.ingestor.streams.manager import StreamManager
from tickwire.ingestor.streams.simulated import SimulatedStream
from tickwire.ingestor.streams.twelvedata import TwelveDataAdapter


def _adapter(name: str, settings: IngestorSettings) -> StreamAdapter:
    if name == "finnhub":
        return FinnhubAdapter(settings.finnhub_ws_url, settings.finnhub_api_key,
                              settings.finnhub_stream_symbols)
    if name == "alpaca":
        return AlpacaAdapter(settings.alpaca_ws_url, settings.alpaca_key_id,
                             settings.alpaca_secret_key, settings.alpaca_stream_symbols)
    return TwelveDataAdapter(settings.twelvedata_ws_url, settings.twelvedata_api_key,
                             settings.twelvedata_stream_symbols)


def add_streams(manager: StreamManager, settings: IngestorSettings, redis: aioredis.Redis,
                replica_id: str) -> None:
    """The configured streams, each upstream one behind its key's connection lease."""
    for name in settings.stream_order():
        if name == "simulated":
            manager.add(SimulatedStream(manager, manager.price_of,
                                        settings.simulated_stream_symbols,
                                        settings.simulated_trades_per_second,
                                        seed=settings.simulated_seed))
            continue
        adapter = _adapter(name, settings)
        lease = ConnectionLease(redis, name, adapter.key, replica_id,
                                settings.stream_lease_seconds)
        manager.add(StreamConnection(adapter, manager, lease,
                                     backoff_seconds=settings.retry_backoff_seconds,
                                     backoff_max_seconds=30.0))


__all__ = ["StreamManager", "add_streams"]
