"""The ingestor's HTTP face and the lifetime of its loops."""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from tickwire.core import names
from tickwire.core.eventlog import ensure_tickwire_topics, event_consumer
from tickwire.core.redisconn import redis_client
from tickwire.core.service import add_probes, error_response, stop_tasks
from tickwire.core.settings import generated_id
from tickwire.ingestor.assignments import ActiveSymbols
from tickwire.ingestor.breaker import CircuitBreaker
from tickwire.ingestor.budget import ProviderBudget
from tickwire.ingestor.daybudget import DailyBudget
from tickwire.ingestor.feed import FeedStore
from tickwire.ingestor.lifetimes import KeyLifetimes
from tickwire.ingestor.poller import Poller
from tickwire.ingestor.providers import build_providers
from tickwire.ingestor.publisher import TickPublisher
from tickwire.ingestor.ratelimit import RateBudget
from tickwire.ingestor.runner import ProviderRunner, RetryPolicy
from tickwire.ingestor.scheduler import Scheduler
from tickwire.ingestor.settings import IngestorSettings
from tickwire.ingestor.streams import StreamManager, add_streams
from tickwire.ingestor.streams.session import SessionStore

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", IngestorSettings)
ACTIVE = web.AppKey("active", ActiveSymbols)
POLLER = web.AppKey("poller", Poller)
STREAMS = web.AppKey("streams", StreamManager)


def build_runners(settings: IngestorSettings, redis: aioredis.Redis) -> list[ProviderRunner]:
    """The configured providers in order, each behind its shared budgets (per minute and
    per day), breaker and retries."""
    retry = RetryPolicy(settings.retry_attempts, settings.retry_backoff_seconds,
                        settings.retry_backoff_max_seconds)
    return [
        ProviderRunner(provider,
                       ProviderBudget(
                           RateBudget(redis, provider.name, limit.per_minute, limit.per_symbol),
                           DailyBudget(redis, provider.name, limit.per_day, limit.per_symbol)),
                       CircuitBreaker(settings.breaker_failures, settings.breaker_reset_seconds),
                       retry, settings.rate_limited_pause_seconds)
        for provider, limit in build_providers(settings)
    ]


async def _background(app: web.Application):
    settings = app[SETTINGS]
    rid = settings.replica_id or generated_id()
    await ensure_tickwire_topics(settings)
    redis = redis_client(settings.redis_url, settings.redis_mode)
    active = app[ACTIVE]
    consumer = event_consumer(settings.kafka_bootstrap_servers, names.INGESTOR_GROUP,
                              f"ingestor-{rid}")
    consumer.subscribe([names.ACTIVE_SYMBOLS_TOPIC], listener=active)
    await consumer.start()
    runners = build_runners(settings, redis)
    # One publisher for polled and streamed ticks: a symbol moving between the two keeps
    # one `seq` (numbered in Redis) and one last-published quote.
    publisher, feed = TickPublisher(redis), FeedStore(redis)
    lifetimes = KeyLifetimes(redis, settings.inactive_key_ttl_seconds)
    active.on_change = lifetimes.changed
    poller = Poller(runners, active, publisher, feed,
                    Scheduler(settings.poll_interval, settings.freshness_seconds), lifetimes)
    poller.latency_warning_seconds = settings.latency_warning_seconds
    sessions = SessionStore(redis, lifetimes)
    streams = app[STREAMS] = StreamManager(active, publisher, feed, sessions,
                                           settings.max_ticks_per_second,
                                           settings.freshness_seconds, poll_busy=poller.busy)
    add_streams(streams, settings, redis, rid)
    poller.streamed = streams.streamed
    app[POLLER] = poller
    tasks = [asyncio.create_task(active.run(consumer), name="assignments"),
             asyncio.create_task(poller.run(), name="poll"),
             asyncio.create_task(streams.run(), name="streams")]
    log.info("ingestor started", extra={"replica": rid, "providers": [r.name for r in runners],
                                        "streams": [s.name for s in streams.streams]})
    yield
    # Shutdown: stop polling (rounds in flight are cancelled), leave the group (partitions
    # move to the other replicas), close provider sessions and Redis.
    await stop_tasks(tasks)
    await consumer.stop()
    for runner in runners:
        await runner.close()
    await publisher.aclose()
    await sessions.aclose()
    await redis.aclose()


async def list_providers(request: web.Request) -> web.Response:
    """Per provider: circuit state, shared budget left, last success and last error; per
    stream: state, symbols held, cap, reconnects, last message age; and the symbols this
    replica owns (`symbols`), split into `polled` and `streamed`, with those flagged stale."""
    poller, streams = request.app[POLLER], request.app[STREAMS]
    try:
        providers = await poller.describe()
    except (RedisError, OSError) as exc:
        return error_response(503, "UNAVAILABLE", f"redis unavailable: {exc!r:.120}")
    polled, streamed = sorted(poller.scheduler.symbols), sorted(streams.streamed)
    return web.json_response({
        "providers": providers,
        "streams": streams.describe(),
        "symbols": sorted({*polled, *streamed}),
        "polled": polled,
        "streamed": streamed,
        "stale": poller.scheduler.stale_symbols(),
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
