"""The edge application: routes, and the lifetime of Redis, Kafka and the hub."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from aiohttp import WSCloseCode, web

from tickwire.core.eventlog import event_producer
from tickwire.core.models import reconnect_message
from tickwire.core.service import add_probes
from tickwire.core.tickbus import RedisTickBus, redis_client
from tickwire.edge.announcements import Announcements
from tickwire.edge.connection import ConnectionHandler
from tickwire.edge.hub import Hub
from tickwire.edge.rest import QuoteRoutes
from tickwire.edge.settings import EdgeSettings

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"

SETTINGS = web.AppKey("settings", EdgeSettings)
CONNECTIONS = web.AppKey("connections", ConnectionHandler)
QUOTES = web.AppKey("quotes", QuoteRoutes)
BUS = web.AppKey("bus", RedisTickBus)
ANNOUNCEMENTS = web.AppKey("announcements", Announcements)


async def _brokers(app: web.Application):
    settings = app[SETTINGS]
    redis = redis_client(settings.redis_url)
    producer = event_producer(settings.kafka_bootstrap_servers, f"edge-{settings.edge_id}")
    await producer.start()
    announcements = app[ANNOUNCEMENTS] = Announcements(producer, settings.edge_id)
    bus = app[BUS] = RedisTickBus(redis, on_message=lambda channel, payload: hub.dispatch(channel, payload))
    hub = Hub(bus, announcements)
    app[CONNECTIONS] = ConnectionHandler(settings, hub, bus)
    app[QUOTES] = QuoteRoutes(bus, settings.freshness_seconds)
    tasks = [
        asyncio.create_task(bus.run(), name="tick-listener"),
        asyncio.create_task(announcements.heartbeat_loop(hub.symbols,
                                                         settings.registry_heartbeat_seconds),
                            name="edge-heartbeat"),
    ]
    log.info("edge started", extra={"edge": settings.edge_id, "port": settings.port})
    yield
    # Shutdown (sockets are already closed by on_shutdown): stop the listener and
    # heartbeats, tell the registry this edge is gone, close the brokers.
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    await announcements.edge_down()
    await producer.stop()
    await redis.aclose()


async def _close_sockets(app: web.Application) -> None:
    handler = app.get(CONNECTIONS)
    if handler is None:
        return
    for session in list(handler.sessions):
        session.send(reconnect_message(1000))
    await asyncio.sleep(0.1)  # let the writers flush the reconnect notice
    for session in list(handler.sessions):
        await session.ws.close(code=WSCloseCode.GOING_AWAY, message=b"edge shutting down")


async def _edge_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["X-Tickwire-Edge"] = request.app[SETTINGS].edge_id


def build_app(settings: EdgeSettings) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings

    def readiness() -> str | None:
        bus = app.get(BUS)
        if bus is None or not bus.connected.is_set():
            return "redis unavailable"
        if not app[ANNOUNCEMENTS].kafka_ok:
            return "kafka unavailable"
        return None

    async def ws(request: web.Request) -> web.StreamResponse:
        return await request.app[CONNECTIONS].handle(request)

    async def quote(request: web.Request) -> web.Response:
        return await request.app[QUOTES].one(request)

    async def quotes(request: web.Request) -> web.Response:
        return await request.app[QUOTES].many(request)

    async def index(_: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    app.on_response_prepare.append(_edge_header)
    app.cleanup_ctx.append(_brokers)
    app.on_shutdown.append(_close_sockets)
    app.router.add_get("/ws", ws)
    app.router.add_get("/api/quotes", quotes)
    app.router.add_get("/api/quotes/{symbol}", quote)
    app.router.add_get("/", index)
    add_probes(app, readiness)
    return app
