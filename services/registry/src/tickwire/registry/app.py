"""The registry's HTTP face and the lifetime of its background loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid

from aiohttp import web
from prometheus_client import Gauge

from tickwire.core import names
from tickwire.core.eventlog import ensure_topics, event_consumer, event_producer, tickwire_topics
from tickwire.core.models import normalise_symbol
from tickwire.core.service import add_probes, error_response
from tickwire.core.tickbus import redis_client
from tickwire.registry.announcer import Announcer
from tickwire.registry.settings import RegistrySettings
from tickwire.registry.state import RegistryState
from tickwire.registry.worker import Health, consume_subscriptions, expire_edges

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", RegistrySettings)
STATE = web.AppKey("state", RegistryState)
HEALTH = web.AppKey("health", Health)

ACTIVE_SYMBOLS = Gauge("tickwire_registry_active_symbols", "Symbols with at least one edge")
LIVE_EDGES = Gauge("tickwire_registry_edges", "Edges known to the registry")


def replica_id(settings: RegistrySettings) -> str:
    return settings.replica_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


async def _background(app: web.Application):
    settings = app[SETTINGS]
    health = app[HEALTH]
    rid = replica_id(settings)
    await ensure_topics(settings.kafka_bootstrap_servers,
                        tickwire_topics(settings.subscriptions_partitions,
                                        settings.active_symbols_partitions),
                        settings.kafka_replication_factor)
    redis = redis_client(settings.redis_url)
    state = RegistryState(redis, settings.lease_seconds, settings.tombstone_seconds)
    app[STATE] = state
    producer = event_producer(settings.kafka_bootstrap_servers, f"registry-{rid}")
    consumer = event_consumer(settings.kafka_bootstrap_servers, names.REGISTRY_GROUP,
                              f"registry-{rid}")
    consumer.subscribe([names.SUBSCRIPTIONS_TOPIC])
    await producer.start()
    await consumer.start()
    health.kafka_ok = True
    announcer = Announcer(redis, producer, rid, settings.leader_ttl_seconds)
    wake = asyncio.Event()
    tasks = [
        asyncio.create_task(consume_subscriptions(consumer, state, health, wake), name="consume"),
        asyncio.create_task(expire_edges(state, health, wake, settings.sweep_interval_seconds),
                            name="expire"),
        asyncio.create_task(announcer.run(wake), name="announce"),
    ]
    log.info("registry started", extra={"replica": rid, "port": settings.port})
    yield
    # Shutdown: stop the loops, hand over the leader lease and partitions, close clients.
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    await announcer.release()
    await consumer.stop()
    await producer.stop()
    await redis.aclose()


async def list_symbols(request: web.Request) -> web.Response:
    active = await request.app[STATE].active_symbols()
    ACTIVE_SYMBOLS.set(len(active))
    return web.json_response({"symbols": [{"symbol": s, "edges": n} for s, n in active]})


async def get_symbol(request: web.Request) -> web.Response:
    symbol = normalise_symbol(request.match_info["symbol"])
    if symbol is None:
        return error_response(400, "INVALID_SYMBOL", "not a valid symbol")
    edges = await request.app[STATE].symbol_edges(symbol)
    if not edges:
        return error_response(404, "NOT_FOUND", f"{symbol} is not active")
    return web.json_response({"symbol": symbol, "active": True, "edges": edges})


async def list_edges(request: web.Request) -> web.Response:
    edges = await request.app[STATE].edges()
    LIVE_EDGES.set(len(edges))
    return web.json_response({"edges": [
        {"edgeId": e.edge_id, "leaseAgeMs": e.lease_age_ms, "symbols": e.symbols} for e in edges
    ]})


def build_app(settings: RegistrySettings) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    health = app[HEALTH] = Health()

    def readiness() -> str | None:
        if not health.redis_ok:
            return "redis unavailable"
        if not health.kafka_ok:
            return "kafka unavailable"
        return None

    app.cleanup_ctx.append(_background)
    app.router.add_get("/api/symbols", list_symbols)
    app.router.add_get("/api/symbols/{symbol}", get_symbol)
    app.router.add_get("/api/edges", list_edges)
    add_probes(app, readiness)
    return app
