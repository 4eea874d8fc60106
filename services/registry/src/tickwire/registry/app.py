"""The registry's HTTP face (DESIGN.md §2) and the lifetime of its background work."""

from __future__ import annotations

import logging

from aiohttp import web

from tickwire.core.models import normalise_symbol
from tickwire.core.service import add_probes, error_response
from tickwire.registry.health import Health
from tickwire.registry.errors import REDIS_ERRORS
from tickwire.registry.retry import describe
from tickwire.registry.runtime import Runtime
from tickwire.registry.settings import RegistrySettings
from tickwire.registry.state import RegistryState

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", RegistrySettings)
HEALTH = web.AppKey("health", Health)
RUNTIME = web.AppKey("runtime", Runtime)


def _state(request: web.Request) -> RegistryState:
    return request.app[RUNTIME].state


async def list_symbols(request: web.Request) -> web.Response:
    active = await _state(request).active_symbols()
    return web.json_response({"symbols": [{"symbol": s, "edges": n} for s, n in active]})


async def get_symbol(request: web.Request) -> web.Response:
    symbol = normalise_symbol(request.match_info["symbol"])
    if symbol is None:
        return error_response(400, "INVALID_SYMBOL", "not a valid symbol")
    edges = await _state(request).symbol_edges(symbol)
    if not edges:
        return error_response(404, "NOT_FOUND", f"{symbol} is not active")
    return web.json_response({"symbol": symbol, "active": True, "edges": edges})


async def list_edges(request: web.Request) -> web.Response:
    edges = await _state(request).edges()
    return web.json_response({"edges": [
        {"edgeId": e.edge_id, "leaseAgeMs": e.lease_age_ms, "symbols": e.symbols} for e in edges
    ]})


@web.middleware
async def redis_unavailable(request: web.Request, handler) -> web.StreamResponse:
    """A read while Redis is down answers 503, not a traceback."""
    try:
        return await handler(request)
    except REDIS_ERRORS as exc:
        log.warning("cannot answer %s: %s", request.path, describe(exc))
        return error_response(503, "UNAVAILABLE", "registry state is unavailable")


async def _runtime(app: web.Application):
    runtime = app[RUNTIME] = Runtime(app[SETTINGS], app[HEALTH])
    runtime.start()
    yield
    await runtime.stop()


def build_app(settings: RegistrySettings) -> web.Application:
    app = web.Application(middlewares=[redis_unavailable])
    app[SETTINGS] = settings
    health = app[HEALTH] = Health()
    app.cleanup_ctx.append(_runtime)
    app.router.add_get("/api/symbols", list_symbols)
    app.router.add_get("/api/symbols/{symbol}", get_symbol)
    app.router.add_get("/api/edges", list_edges)
    add_probes(app, health.reason)
    return app
