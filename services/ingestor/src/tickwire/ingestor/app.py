"""The ingestor's HTTP face and the lifetime of its loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid

from aiohttp import web

from tickwire.core import names
from tickwire.core.eventlog import ensure_topics, event_consumer, tickwire_topics
from tickwire.core.service import add_probes
from tickwire.core.tickbus import RedisTickBus, redis_client
from tickwire.ingestor.assignments import ActiveSymbols
from tickwire.ingestor.poller import Poller
from tickwire.ingestor.providers import build_providers
from tickwire.ingestor.publisher import TickPublisher
from tickwire.ingestor.settings import IngestorSettings

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", IngestorSettings)
ACTIVE = web.AppKey("active", ActiveSymbols)
POLLER = web.AppKey("poller", Poller)


async def _background(app: web.Application):
    settings = app[SETTINGS]
    rid = settings.replica_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    await ensure_topics(settings.kafka_bootstrap_servers,
                        tickwire_topics(settings.subscriptions_partitions,
                                        settings.active_symbols_partitions),
                        settings.kafka_replication_factor)
    redis = redis_client(settings.redis_url)
    active = app[ACTIVE]
    consumer = event_consumer(settings.kafka_bootstrap_servers, names.INGESTOR_GROUP,
                              f"ingestor-{rid}")
    consumer.subscribe([names.ACTIVE_SYMBOLS_TOPIC], listener=active)
    await consumer.start()
    providers = build_providers(settings)
    poller = app[POLLER] = Poller(providers, active, TickPublisher(redis, RedisTickBus(redis)),
                                  settings.poll_interval)
    tasks = [asyncio.create_task(active.run(consumer), name="assignments"),
             asyncio.create_task(poller.run(), name="poll")]
    log.info("ingestor started", extra={"replica": rid, "providers": [p.name for p in providers]})
    yield
    # Shutdown: stop polling, leave the group (partitions move to the other replicas),
    # close provider sessions and Redis.
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    await consumer.stop()
    for provider in providers:
        await provider.close()
    await redis.aclose()


async def list_providers(request: web.Request) -> web.Response:
    poller = request.app[POLLER]
    return web.json_response({
        "providers": [status.to_json() for status in poller.status.values()],
        "symbols": sorted(request.app[ACTIVE].symbols()),
    })


def build_app(settings: IngestorSettings) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    active = app[ACTIVE] = ActiveSymbols()

    def readiness() -> str | None:
        poller = app.get(POLLER)
        if poller is None:
            return "starting"
        if not poller.redis_ok:
            return "redis unavailable"
        if not active.kafka_ok:
            return "kafka unavailable"
        return None

    app.cleanup_ctx.append(_background)
    app.router.add_get("/api/providers", list_providers)
    add_probes(app, readiness)
    return app
