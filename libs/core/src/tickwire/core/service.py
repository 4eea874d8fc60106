"""What every tickwire service process shares: start-up checks, probes, metrics, running."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import prometheus_client
import uvloop
from aiohttp import web
from redis.exceptions import RedisError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_random_exponential

from tickwire.core.eventlog import KafkaError, kafka_reachable
from tickwire.core.logs import configure_logging
from tickwire.core.settings import S, ServiceSettings, env_name, fail_start, load_settings
from tickwire.core.telemetry import configure_tracing, instance_id, shutdown_tracing
from tickwire.core.redisconn import redis_client

log = logging.getLogger(__name__)

Readiness = Callable[[], str | None]  # None when ready, else the reason it is not


async def wait_for_dependencies(settings: ServiceSettings, program: str, kafka: bool = True) -> None:
    """Wait (with backoff) for Redis and Kafka; past the start-up timeout, stop with one
    line naming the setting that points at the unreachable server."""

    async def check(name: str, value: str, probe: Callable[[], Awaitable[None]]) -> None:
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_delay(settings.startup_timeout_seconds),
                wait=wait_random_exponential(multiplier=0.2, max=3),
                retry=retry_if_exception_type((RedisError, KafkaError, OSError, asyncio.TimeoutError)),
                reraise=True,
            ):
                with attempt:
                    await probe()
        except (RedisError, KafkaError, OSError, asyncio.TimeoutError) as exc:
            # redis-py errors repr as "server:ErrorName": the message is what says why.
            fail_start(program, name, value, f"unreachable ({type(exc).__name__}: {str(exc)[:160]})")

    async def ping_redis() -> None:
        client = redis_client(settings.redis_url, settings.redis_mode)
        try:
            await client.ping()
        finally:
            await client.aclose()

    await check(env_name(type(settings), "redis_url"), settings.redis_url, ping_redis)
    if kafka:
        # aiokafka logs every refused connection as an error; while waiting, the outcome
        # is reported once, by us.
        kafka_log = logging.getLogger("aiokafka")
        level = kafka_log.level
        kafka_log.setLevel(logging.CRITICAL)
        try:
            await check(env_name(type(settings), "kafka_bootstrap_servers"),
                        settings.kafka_bootstrap_servers,
                        lambda: kafka_reachable(settings.kafka_bootstrap_servers))
        finally:
            kafka_log.setLevel(level)


def add_probes(app: web.Application, readiness: Readiness,
               before_scrape: Callable[[], None] | None = None,
               exposition: Callable[[], Awaitable[bytes]] | None = None) -> None:
    """/healthz (the process works), /readyz (dependencies up, not draining), /metrics.
    `before_scrape` refreshes gauges that are cheaper to compute per scrape than to keep;
    `exposition`, when given, makes the /metrics body instead of this process's registry
    (an edge worker answers for all its siblings)."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        reason = readiness()
        if reason is None:
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not_ready", "reason": reason}, status=503)

    async def metrics(_: web.Request) -> web.Response:
        if exposition is not None:
            body = await exposition()
            return web.Response(body=body,
                                headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})
        if before_scrape is not None:
            before_scrape()
        body = prometheus_client.generate_latest(prometheus_client.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


async def stop_tasks(tasks: Iterable[asyncio.Task]) -> None:
    """Cancel every task, then wait for each to end: a service's background loops at
    shutdown. What a task raises on its way out is not the shutdown's concern."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def run_service(app_factory: Callable[[], Awaitable[web.Application]], host: str, port: int,
                **listen: Any) -> None:
    """Run until SIGINT/SIGTERM; aiohttp then runs on_shutdown and cleanup_ctx in order.
    `listen` passes socket options to aiohttp (`backlog`, `reuse_port`)."""
    uvloop.install()
    web.run_app(app_factory(), host=host, port=port, print=None, access_log=None,
                shutdown_timeout=5, handle_signals=True, **listen)


def serve(program: str, settings_class: type[S], build_app: Callable[[S], web.Application],
          listen: Callable[[S], dict[str, Any]] | None = None) -> None:
    """A service's whole `main`: settings from the environment (one line and exit 2 on a
    bad value), logging and tracing, wait for Redis and Kafka, then serve until SIGTERM.
    `listen(settings)` gives the listening socket's options."""
    settings = load_settings(settings_class, program)
    configure_logging(program, settings.log_level, settings.log_format)
    provider = configure_tracing(program, instance_id(settings), settings.trace_tick_ratio,
                                 settings.trace_subscription_ratio)

    async def flush_traces(_: web.Application) -> None:
        # After cleanup_ctx (registered later): the shutdown's own spans are included.
        await asyncio.to_thread(shutdown_tracing, provider)

    async def start() -> web.Application:
        await wait_for_dependencies(settings, program)
        app = build_app(settings)
        if provider is not None:
            app.on_cleanup.append(flush_traces)
        return app

    run_service(start, settings.host, settings.port, **(listen(settings) if listen else {}))
