"""The edge application: routes, and the lifetime of Redis, Kafka and the node."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from pathlib import Path

from aiohttp import web

from tickwire.core.bus import tick_bus
from tickwire.core.eventlog import ensure_tickwire_topics, event_producer
from tickwire.core.redisconn import redis_client
from tickwire.core.service import add_probes, stop_tasks
from tickwire.edge.announcements import Announcements
from tickwire.edge.clientconfig import config_route
from tickwire.edge.node import EdgeNode
from tickwire.edge.observability import HOT, LATENCY_WARNINGS, export_subscriptions
from tickwire.edge.rest import QuoteRoutes
from tickwire.edge.settings import EdgeSettings
from tickwire.edge.sse import stream
from tickwire.edge.stalls import StallTracer, probe_loop_lag, time_collections
from tickwire.edge.websocket import WebSocketEndpoint
from tickwire.edge.workers import WorkerMetrics

log = logging.getLogger(__name__)

GC_YOUNG_THRESHOLD = 10_000  # CPython's default is 700

STATIC = Path(__file__).parent / "static"
DASHBOARD = STATIC / "dashboard"  # built from libs/web-client by its build.sh; not in git

SETTINGS = web.AppKey("settings", EdgeSettings)
NODE = web.AppKey("node", EdgeNode)
WEBSOCKETS = web.AppKey("websockets", WebSocketEndpoint)
QUOTES = web.AppKey("quotes", QuoteRoutes)
WORKER_METRICS = web.AppKey("worker_metrics", WorkerMetrics)


async def _worker_metrics(app: web.Application):
    """A worker's private metrics listener, for its siblings' /metrics, while it runs."""
    metrics = app.get(WORKER_METRICS)
    if metrics is not None:
        await metrics.start()
    yield
    if metrics is not None:
        await metrics.stop()


async def _node(app: web.Application):
    settings = app[SETTINGS]
    await ensure_tickwire_topics(settings)
    redis = redis_client(settings.redis_url, settings.redis_mode)
    producer = event_producer(settings.kafka_bootstrap_servers, f"edge-{settings.edge_id}")
    await producer.start()
    announcements = Announcements(producer, settings.edge_id)
    bus = tick_bus(redis, standing_channels=())
    node = app[NODE] = EdgeNode(settings, bus, announcements, exit_process=_exit_process)
    app[WEBSOCKETS] = WebSocketEndpoint(node)
    app[QUOTES] = QuoteRoutes(node)
    tasks = [
        asyncio.create_task(bus.run(), name="tick-listener"),
        asyncio.create_task(announcements.run(), name="announcements"),
        asyncio.create_task(announcements.heartbeat_loop(node.hub.symbols,
                                                         settings.registry_heartbeat_seconds),
                            name="edge-heartbeat"),
        asyncio.create_task(node.sweep_forever(), name="sweep"),
        asyncio.create_task(node.poll_interest.run(), name="poll-interest"),
        asyncio.create_task(probe_loop_lag(lambda: HOT.ticks_received), name="loop-lag"),
    ]
    time_collections()
    tracer = StallTracer(settings.stall_trace_ms / 1000) if settings.stall_trace_ms else None
    if tracer is not None:
        tracer.start()
    await node.feeds.load(redis)  # after the listener started: no notice falls in between
    # Everything made so far (modules, settings, clients: ~86,000 objects) lives as long as
    # the process: take it out of the garbage collector's full passes, which otherwise
    # stop the event loop, and every tick in flight, for ~40 % longer at 2,000 sockets.
    gc.freeze()
    # A full collection walks every object of every socket (~200 ms at 2,000 sockets on a
    # loaded core, seen by the stall tracer in the middle of a fan-out), and CPython runs
    # one after every ten collections of the middle generation. Collecting the youngest
    # generation every GC_YOUNG_THRESHOLD allocations instead of every 700 makes all the
    # older collections that much rarer; a young collection stays well under a
    # millisecond.
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    log.info("edge started", extra={"edge": settings.edge_id, "port": settings.port})
    yield
    # Shutdown, after on_shutdown drained the clients:
    # 1. stop the listener, heartbeats and sweeps;
    # 2. tell the registry this edge is gone (it drops our symbols at once);
    # 3. close Kafka and Redis.
    if tracer is not None:
        tracer.stop()
    await stop_tasks(tasks)
    await announcements.edge_down()
    await producer.stop()
    await redis.aclose()


def _exit_process() -> None:
    """After a drain asked for on the control channel: the rest of the shutdown is the
    same as on SIGTERM (aiohttp's)."""
    os.kill(os.getpid(), signal.SIGTERM)


async def _drain(app: web.Application) -> None:
    """SIGTERM: the listening socket is already closed; move the clients away."""
    node = app.get(NODE)
    if node is not None and not node.drained.is_set():
        await node.drain()


async def _edge_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["X-Tickwire-Edge"] = request.app[SETTINGS].edge_id


@web.middleware
async def _edge_header_on_errors(request: web.Request, handler):
    """aiohttp's own answers (404 no route, 405) are raised, not prepared by a handler."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        exc.headers["X-Tickwire-Edge"] = request.app[SETTINGS].edge_id
        raise


def build_app(settings: EdgeSettings) -> web.Application:
    app = web.Application(client_max_size=64 * 1024, middlewares=[_edge_header_on_errors])
    app[SETTINGS] = settings
    LATENCY_WARNINGS.threshold = settings.latency_warning_seconds

    def readiness() -> str | None:
        node = app.get(NODE)
        if node is None:
            return "starting"
        if node.draining:
            return "draining"
        if not node.bus.connected.is_set():
            return "redis unavailable"
        if not node.announcements.kafka_ok:
            return "kafka unavailable"
        return None

    async def ws(request: web.Request) -> web.StreamResponse:
        return await request.app[WEBSOCKETS].handle(request)

    async def sse(request: web.Request) -> web.StreamResponse:
        return await stream(request, request.app[NODE])

    async def quote(request: web.Request) -> web.Response:
        return await request.app[QUOTES].one(request)

    async def quotes(request: web.Request) -> web.Response:
        return await request.app[QUOTES].many(request)

    async def index(_: web.Request) -> web.FileResponse:
        # The built dashboard, or the plain page that says how to build it.
        built = DASHBOARD / "index.html"
        page = built if built.is_file() else STATIC / "index.html"
        return web.FileResponse(page, headers={"Cache-Control": "no-cache"})

    async def asset(request: web.Request) -> web.FileResponse:
        name = request.match_info["name"]
        path = DASHBOARD / "assets" / name
        if name.startswith(".") or not path.is_file():
            raise web.HTTPNotFound()
        # Names carry a content hash: a changed file is a new name.
        return web.FileResponse(path, headers={"Cache-Control": "public, max-age=31536000, immutable"})

    def before_scrape() -> None:
        node = app.get(NODE)
        export_subscriptions(node.hub.subscriber_counts() if node is not None else {})

    worker_metrics = WorkerMetrics.from_env(before_scrape)
    if worker_metrics is not None:
        app[WORKER_METRICS] = worker_metrics

    app.on_response_prepare.append(_edge_header)
    app.cleanup_ctx.append(_worker_metrics)
    app.cleanup_ctx.append(_node)
    app.on_shutdown.append(_drain)
    app.router.add_get("/ws", ws)
    app.router.add_get("/api/stream", sse)
    app.router.add_get("/api/quotes", quotes)
    app.router.add_get("/api/quotes/{symbol}", quote)
    app.router.add_get("/api/config", config_route(settings))
    app.router.add_get("/", index)
    app.router.add_get("/assets/{name:[A-Za-z0-9._-]+}", asset)

    add_probes(app, readiness, before_scrape,
               worker_metrics.exposition if worker_metrics is not None else None)
    return app
