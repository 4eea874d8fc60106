"""The tick bus on Redis Cluster: ticks on sharded Pub/Sub, one reader per shard.

A tick channel lives in its symbol's hash slot (`names.tick_channel`), so its ticks are
published (`SPUBLISH`) and delivered by that shard's nodes only. This bus holds one raw
hiredis connection (`pubsub.SubscriberConnection`) to the primary of every shard it
needs, per the slot map from `CLUSTER SHARDS`, plus one classic-Pub/Sub connection to any
node for the standing channels (control, feed status), which a cluster broadcasts.

Delivery guarantee: at most once, in publish order per channel, as on one Redis. When a
shard's primary fails over, a slot migrates (the node pushes `sunsubscribe`, or answers
`-MOVED`), or a connection is lost, the affected channels are subscribed again where the
refreshed slot map puts them, and each one's cached tick is then handed on as if just
published, so subscribers converge at once; ticks published meanwhile are lost (a
subscriber sees a `seq` gap closed by the newest tick).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisError

from tickwire.core import names
from tickwire.core.backoff import backoff_delay
from tickwire.core.pubsub import MessageHandler, SubscriberConnection
from tickwire.core.tickbus import COMMAND_TIMEOUT, HEALTH_CHECK_SECONDS, RedisTickBus

log = logging.getLogger(__name__)

Node = tuple[str, int]  # host, port
# Error replies that mean "not here, not now" (the slot moved or is moving, the shard is
# failing over, the connection is closing): subscribe again after a resync.
SLOT_MAP_TIMEOUT = 1.0  # seconds one node may take to answer CLUSTER SHARDS
TRANSIENT_REPLIES = ("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "LOADING", "connection")


def parse_shards(reply: list) -> list[tuple[int, int, Node]]:
    """(first slot, last slot, primary) ranges from a parsed `CLUSTER SHARDS` reply,
    sorted; a shard without a healthy primary (mid-failover) serves no range yet."""
    ranges = []
    for shard in reply:
        primary = next((n for n in shard["nodes"] if _field(n, "role") == "master"
                        and _field(n, "health") == "online"), None)
        if primary is None:
            continue
        node = (_field(primary, "endpoint") or _field(primary, "ip"), int(_field(primary, "port")))
        slots = shard["slots"]
        ranges.extend((int(slots[i]), int(slots[i + 1]), node) for i in range(0, len(slots), 2))
    return sorted(ranges)


def _field(node: dict, name: str):
    value = node.get(name.encode(), node.get(name))
    return value.decode() if isinstance(value, bytes) else value


class ShardedTickBus(RedisTickBus):
    """`subscribe` returns once every new channel is confirmed by the node that serves
    it; a channel whose shard is unreachable right now is held as wanted and subscribed
    by `run` as soon as the slot map names a reachable primary for it."""

    def __init__(self, redis: RedisCluster, on_message: MessageHandler | None = None,
                 standing_channels: Iterable[str] = ()):
        super().__init__(redis, on_message, standing_channels)
        self._ranges: list[tuple[int, int, Node]] = []
        self._nodes: dict[Node, SubscriberConnection] = {}
        self._held: dict[str, Node] = {}  # channel -> the node that confirmed it
        self._standing_conn: SubscriberConnection | None = None
        self._resync = asyncio.Event()

    # -- subscribing ----------------------------------------------------------------

    async def subscribe(self, channels: Iterable[str]) -> None:
        new = [c for c in channels if c not in self._channels]
        if not new:
            return
        self._channels.update(new)
        if not self._ranges:
            return  # `run` places them once it has the slot map
        async with self._lock:
            try:
                await self._place(new)
            except ConnectionRefusedError:
                # A refusal other than the slot having moved (an ACL, say): not held.
                self._channels.difference_update(new)
                raise
            except (RedisError, OSError):
                # The shard is unreachable or mid-failover: `run` retries.
                self._resync.set()

    async def unsubscribe(self, channels: Iterable[str]) -> None:
        gone = [c for c in channels if c in self._channels]
        self._channels.difference_update(gone)
        async with self._lock:
            for channel in gone:
                node = self._held.pop(channel, None)
                conn = self._nodes.get(node) if node else None
                if conn is not None:
                    try:
                        conn.sunsubscribe(channel)
                    except OSError:
                        pass  # that connection is gone, and the channel with it

    # -- the listener -------------------------------------------------------------------

    async def run(self) -> None:
        """Keep every wanted channel subscribed on the node serving it, until cancelled."""
        attempt = 0
        try:
            while True:
                try:
                    async with self._lock:
                        await self._sync()
                    attempt = 0
                    self.connected.set()
                    self.gaps += 1  # channels held again: what came before may be stale
                    await self._watch()
                except Exception as exc:  # any failure: a dead listener would silence the edge
                    self.connected.clear()
                    self.gaps += 1
                    delay = backoff_delay(attempt, 0.05, 2.0)
                    attempt += 1
                    log.warning("redis cluster subscriber resyncing",
                                extra={"error": repr(exc), "retry_in_s": round(delay, 2)})
                    await asyncio.sleep(delay)
        finally:
            self._close()

    async def _sync(self) -> None:
        """Refresh the slot map, then subscribe every wanted channel that is not held on
        the node now serving it. Raises if some could not be placed (the caller retries)."""
        self._resync.clear()
        self._ranges = await self._slot_map()
        if self._standing and self._standing_conn is None:
            node = self._ranges[0][2] if self._ranges else None
            if node is None:
                raise ConnectionResetError("no primary serves any slot")
            conn = await self._open(node)
            await asyncio.wait_for(conn.subscribe(self._standing), COMMAND_TIMEOUT)
            self._standing_conn = conn
            conn.closed.add_done_callback(lambda _: self._lost_standing(conn))
        # Not held, or held where its slot no longer lives (a channel of a slot no node
        # serves yet counts too: placing it fails, and the caller retries).
        misplaced = [c for c in self._channels
                     if c not in self._held or self._held[c] != self._node_of(c)]
        for channel in misplaced:
            old = self._held.pop(channel, None)
            if old is not None and old in self._nodes:
                self._nodes[old].sunsubscribe(channel)
        try:
            await self._place(misplaced)
        finally:
            await self._replay([c for c in misplaced if c in self._held])

    async def _replay(self, channels: list[str]) -> None:
        """Hand each resubscribed tick channel's cached tick to `on_message`, as if just
        published: a subscriber that missed ticks while the channel moved converges now,
        not at the symbol's next tick (a tick it already has is older and is dropped)."""
        symbols = [names.symbol_from_channel(c) for c in channels
                   if c.startswith(names.TICK_CHANNEL_PREFIX)]
        if not symbols or self._on_message is None:
            return
        keys = [names.quote_key(s) for s in symbols]
        try:
            payloads = await asyncio.wait_for(self._redis.mget_nonatomic(keys), COMMAND_TIMEOUT)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            # Best effort: the channels are subscribed, the next ticks bring the news.
            log.warning("cached ticks not replayed", extra={"error": repr(exc)})
            return
        for symbol, payload in zip(symbols, payloads):
            if payload:
                self._on_message(names.tick_channel(symbol), payload)

    async def _slot_map(self) -> list[tuple[int, int, Node]]:
        """`CLUSTER SHARDS` from the first node that answers, each asked briefly: right
        after a failover the dead node is still in the list, and redis-py would spend its
        retries on it."""
        failure: BaseException | None = None
        for node in self._redis.get_nodes():
            try:
                return parse_shards(await asyncio.wait_for(
                    self._redis.execute_command("CLUSTER SHARDS", target_nodes=node),
                    SLOT_MAP_TIMEOUT))
            except (RedisError, OSError, asyncio.TimeoutError) as exc:
                failure = exc
        raise ConnectionResetError(f"no node answered CLUSTER SHARDS: {failure!r}")

    async def _watch(self) -> None:
        """Return when something needs a resync; meanwhile PING every connection each
        HEALTH_CHECK_SECONDS (an unanswered one is closed, which asks for a resync)."""
        while True:
            try:
                await asyncio.wait_for(self._resync.wait(), HEALTH_CHECK_SECONDS)
                return
            except asyncio.TimeoutError:
                pass
            conns = [*self._nodes.values(), *filter(None, [self._standing_conn])]
            results = await asyncio.gather(*(asyncio.wait_for(c.ping(), COMMAND_TIMEOUT)
                                             for c in conns), return_exceptions=True)
            for conn, result in zip(conns, results):
                if isinstance(result, BaseException):
                    conn.close()

    async def _place(self, channels: list[str]) -> None:
        """SSUBSCRIBE each channel on the node serving its slot; raises the first failure
        after trying them all (a -MOVED asks for a resync with a fresh map)."""
        by_node: dict[Node, list[str]] = {}
        for channel in channels:
            node = self._node_of(channel)
            if node is None:
                self._resync.set()
                raise ConnectionResetError(f"no primary serves the slot of {channel}")
            by_node.setdefault(node, []).append(channel)
        failures: list[BaseException] = []  # the node unreachable, moving or recovering
        refused: list[BaseException] = []   # the node said no for good (an ACL, say)
        for node, wanted in by_node.items():
            try:
                conn = self._nodes.get(node) or await self._connect_node(node)
                results = await asyncio.wait_for(asyncio.gather(
                    *(conn.ssubscribe(c) for c in wanted), return_exceptions=True), COMMAND_TIMEOUT)
            except (OSError, asyncio.TimeoutError) as exc:
                failures.append(exc)
                continue
            for channel, result in zip(wanted, results):
                if isinstance(result, BaseException):
                    transient = any(word in str(result) for word in TRANSIENT_REPLIES)
                    (failures if transient else refused).append(result)
                elif channel in self._channels:  # not unsubscribed meanwhile
                    self._held[channel] = node
                else:
                    conn.sunsubscribe(channel)
        if refused:
            raise refused[0]
        if failures:
            self._resync.set()
            raise ConnectionResetError(repr(failures[0]))

    def _node_of(self, channel: str) -> Node | None:
        slot = key_slot(channel.encode())
        for first, last, node in self._ranges:
            if first <= slot <= last:
                return node
        return None

    async def _connect_node(self, node: Node) -> SubscriberConnection:
        conn = await self._open(node)
        self._nodes[node] = conn
        conn.closed.add_done_callback(lambda _: self._lost_node(node, conn))
        return conn

    async def _open(self, node: Node) -> SubscriberConnection:
        default = self._redis.get_default_node()
        kwargs = {**default.connection_kwargs, "host": node[0], "port": node[1]}
        return await SubscriberConnection.open(kwargs, default.connection_class, self._dispatch,
                                               COMMAND_TIMEOUT, on_dropped=self._dropped)

    def _dropped(self, channel: str) -> None:
        """The server unsubscribed us (its slot moved, or the node became a replica)."""
        self.gaps += 1
        self._held.pop(channel, None)
        self._resync.set()

    def _lost_node(self, node: Node, conn: SubscriberConnection) -> None:
        self.gaps += 1
        if self._nodes.get(node) is conn:
            del self._nodes[node]
        for channel in [c for c, n in self._held.items() if n == node]:
            del self._held[channel]
        self._resync.set()

    def _lost_standing(self, conn: SubscriberConnection) -> None:
        if self._standing_conn is conn:
            self._standing_conn = None
        self._resync.set()

    def _close(self) -> None:
        for conn in [*self._nodes.values(), *filter(None, [self._standing_conn])]:
            conn.close()
        self._nodes.clear()
        self._held.clear()
        self._standing_conn = None
        self.connected.clear()
