"""`GET /api/config`: the settings every client of this edge should use.

Guarantees: the answer depends only on this edge's settings, so every edge of a deployment
(configured alike) gives every client the same one. Clients bucket themselves: a client id
hashes (FNV-1a, 32 bits, over its UTF-8 bytes) to a bucket 0..99, and a client streams over
the WebSocket only while `websocketEnabled` and its bucket is below
`websocketRolloutPercent`; the others poll the REST endpoints every `pollingIntervalMs`.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from tickwire.edge.settings import EdgeSettings

ROLLOUT_BUCKETING = "fnv1a32-mod100"


def client_settings(settings: EdgeSettings) -> dict:
    return {
        "websocketEnabled": settings.websocket_enabled,
        "websocketRolloutPercent": settings.websocket_rollout_percent,
        "rolloutBucketing": ROLLOUT_BUCKETING,
        "pollingIntervalMs": settings.client_polling_interval_ms,
        "reconnectIntervalMs": settings.client_reconnect_interval_ms,
        "maxReconnectAttempts": settings.client_max_reconnect_attempts,
        "heartbeatIntervalMs": round(settings.heartbeat_interval * 1000),
    }


def config_route(settings: EdgeSettings):
    """The handler: one body, encoded once (the settings do not change while running)."""
    body = orjson.dumps(client_settings(settings))

    async def handle(_: web.Request) -> web.Response:
        # Revalidated on every page load: a rollout step reaches clients at their next start.
        return web.Response(body=body, content_type="application/json",
                            headers={"Cache-Control": "no-cache"})

    return handle
