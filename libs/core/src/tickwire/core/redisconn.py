"""The one way a tickwire service connects to Redis: one server or a Redis Cluster.

`TICKWIRE_REDIS_MODE=standalone` (the default) gives a plain `redis.asyncio.Redis`;
`cluster` gives `redis.asyncio.cluster.RedisCluster`, which learns the slot map from the
node in `TICKWIRE_REDIS_URL` and follows `-MOVED` and failovers. Both answer the same
commands, so callers only branch where Redis itself differs: Pub/Sub of ticks is sharded
on a cluster (`SPUBLISH`), and a script runs in a pipeline only once it is loaded on the
node that serves its keys (`run_scripts`). A script run thousands of times a second goes
through `script_batches`: on a standalone Redis, a connection of its own below redis-py
(`scripts`).
"""

from __future__ import annotations

from typing import Any, Literal

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import ClusterError, NoScriptError, RedisClusterException

from tickwire.core.scripts import Call, ScriptBatches

RedisMode = Literal["standalone", "cluster"]
RedisClient = aioredis.Redis | RedisCluster


class _Cluster(RedisCluster):
    """redis-py's cluster client whose every failure is a RedisError: it raises some
    passing cluster states (a slot no node serves, mid-failover) as a bare
    RedisClusterException, which the services' Redis error handling would not catch."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except RedisClusterException as exc:
            raise ClusterError(str(exc)) from exc


def redis_client(url: str, mode: RedisMode = "standalone", **options: Any) -> RedisClient:
    """A client for `url`; `options` (timeouts) apply to every connection it makes."""
    options = {"socket_connect_timeout": 3, "health_check_interval": 15, **options}
    if mode == "cluster":
        return _Cluster.from_url(url, **options)
    return aioredis.Redis.from_url(url, **options)


def is_cluster(redis: RedisClient) -> bool:
    return isinstance(redis, RedisCluster)


def tick_publish_command(redis: RedisClient) -> str:
    """How ticks are published: sharded on a cluster, so a tick costs only the shard that
    owns its symbol (classic PUBLISH there would be copied to every node)."""
    return "SPUBLISH" if is_cluster(redis) else "PUBLISH"


async def run_scripts(redis: RedisClient, script: AsyncScript,
                      calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
    """Run `script` once per (keys, args) in one pipeline (not a transaction: each call is
    atomic by itself). Returns each call's reply, or the exception it raised, in order.
    A node that does not know the script yet (new, restarted, promoted) gets it loaded and
    only the calls it refused are run again."""
    replies: list[Any] = [None] * len(calls)
    pending = list(range(len(calls)))
    for attempt in range(2):
        async with redis.pipeline(transaction=False) as pipe:
            for index in pending:
                keys, args = calls[index]
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            try:
                results = await pipe.execute(raise_on_error=False)
            except RedisClusterException as exc:
                raise ClusterError(str(exc)) from exc
        refused = []
        for index, result in zip(pending, results):
            replies[index] = result
            if isinstance(result, NoScriptError):
                refused.append(index)
        if not refused or attempt:
            break
        await redis.script_load(script.script)  # a cluster client loads it on every primary
        pending = refused
    return replies


class PipelinedScripts:
    """`ScriptBatches`' interface over `run_scripts`, for a Redis Cluster: each node's calls
    in one pipeline of redis-py's. Unlike `ScriptBatches`, a lost connection raises."""

    def __init__(self, redis: RedisClient, source: str):
        self._redis = redis
        self._script = redis.register_script(source)

    async def run(self, calls: list[Call]) -> list[Any]:
        return await run_scripts(self._redis, self._script, calls)

    async def aclose(self) -> None:
        return None  # the client's pools are the caller's to close


def script_batches(redis: RedisClient, source: str) -> ScriptBatches | PipelinedScripts:
    """How to run `source` in batches (`run(calls)`: per call its reply or its exception):
    on a connection of its own for a standalone Redis, through redis-py on a cluster."""
    if is_cluster(redis):
        return PipelinedScripts(redis, source)
    return ScriptBatches(redis, source)
