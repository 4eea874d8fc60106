"""Every Redis key, Redis channel and Kafka topic name tickwire uses (DESIGN.md §4).

Symbols are upper-case, so the lower-case suffixes below never collide with a symbol.

Hash tags (the part in braces) decide a name's Redis Cluster slot, and every multi-key
operation stays inside one slot: a symbol's tick channel, cached quote and `seq` counter
share the tag `{SYMBOL}` (one script numbers, caches and publishes a tick), and all the
registry's state shares `{registry}` (one script applies an event to every set it
touches). A standalone Redis ignores the braces.
"""

# Redis Pub/Sub. Tick channels are sharded in cluster mode (SPUBLISH / SSUBSCRIBE); the
# two standing channels carry rare messages and stay on classic Pub/Sub in either mode.
TICK_CHANNEL_PREFIX = "market-data:updates:{"
CONTROL_CHANNEL = "market-data:control"
# One channel for every symbol's feed-status changes (models.FeedStatus, msgpack): changes
# are rare, so each edge listens to all of them and keeps those its clients want.
STATUS_CHANNEL = "market-data:status"

SYMBOL_TAG_SUFFIX = "}"  # closes the `{SYMBOL}` tag of the names built below

# Redis keys of a symbol's ticks
QUOTE_KEY_PREFIX = "quote:{"
SEQ_KEY_PREFIX = "market-data:seq:{"
# Single-key families: no tag needed
FEED_KEY_PREFIX = "market-data:feed:"
RATE_BUCKET_PREFIX = "market-data:ratelimit:"

# The registry's keys (one slot)
REGISTRY_PREFIX = "market-data:{registry}:"
ACTIVE_SYMBOLS_KEY = f"{REGISTRY_PREFIX}active-symbols"
EDGES_KEY = f"{REGISTRY_PREFIX}edges"
REGISTRY_OUTBOX_KEY = f"{REGISTRY_PREFIX}outbox"
REGISTRY_LEADER_KEY = f"{REGISTRY_PREFIX}leader"
REGISTRY_PROGRESS_KEY = f"{REGISTRY_PREFIX}progress"  # hash partition -> caught-up time (ms)
SYMBOL_EDGES_PREFIX = f"{REGISTRY_PREFIX}symbol:"
SYMBOL_EDGES_SUFFIX = ":edges"
EDGE_KEY_PREFIX = f"{REGISTRY_PREFIX}edge:"

# Kafka
SUBSCRIPTIONS_TOPIC = "market-data.subscriptions"
ACTIVE_SYMBOLS_TOPIC = "market-data.active-symbols"
REGISTRY_GROUP = "registry"
INGESTOR_GROUP = "ingestor"


def tick_channel(symbol: str) -> str:
    return f"{TICK_CHANNEL_PREFIX}{symbol}{SYMBOL_TAG_SUFFIX}"


def symbol_from_channel(channel: str) -> str:
    return channel[len(TICK_CHANNEL_PREFIX):-len(SYMBOL_TAG_SUFFIX)]


def quote_key(symbol: str) -> str:
    return f"{QUOTE_KEY_PREFIX}{symbol}{SYMBOL_TAG_SUFFIX}"


def seq_key(symbol: str) -> str:
    """Hash {seq, epoch, ts}: the tick counter of a symbol, the id of its lifetime and the
    market time (Unix ms) of the newest quote published."""
    return f"{SEQ_KEY_PREFIX}{symbol}{SYMBOL_TAG_SUFFIX}"


def feed_key(symbol: str) -> str:
    """Hash {fetchedAt, stale}: when a provider last answered for the symbol (Unix ms, any
    ingestor replica) and "1" while its data is flagged stale (see models.FeedStatus)."""
    return f"{FEED_KEY_PREFIX}{symbol}"


def rate_bucket_key(provider: str) -> str:
    """Hash {tokens, ts}: the token bucket all ingestor replicas share for one provider."""
    return f"{RATE_BUCKET_PREFIX}{provider}"


def symbol_edges_key(symbol: str) -> str:
    return f"{SYMBOL_EDGES_PREFIX}{symbol}{SYMBOL_EDGES_SUFFIX}"


def edge_symbols_key(edge_id: str) -> str:
    return f"{EDGE_KEY_PREFIX}{edge_id}:symbols"


def edge_lease_key(edge_id: str) -> str:
    """Hash {seen, heartbeat}: the edge's clock at its newest event and newest heartbeat."""
    return f"{EDGE_KEY_PREFIX}{edge_id}:lease"


def edge_stamps_key(edge_id: str) -> str:
    """Hash symbol → ts of the newest event applied for (edge, symbol); older ones are stale."""
    return f"{EDGE_KEY_PREFIX}{edge_id}:stamps"


def edge_down_key(edge_id: str) -> str:
    """Tombstone of an edge that left: its late events are ignored."""
    return f"{EDGE_KEY_PREFIX}{edge_id}:down"


SESSION_KEY_PREFIX = "market-data:session:"
STREAM_LEASE_PREFIX = "market-data:stream-lease:"


def session_key(symbol: str) -> str:
    """Hash {session, previousClose, open, high, low, volume, price, at}: the trading-session
    aggregate the ingestor builds a streamed symbol's quote from (any replica continues it)."""
    return f"{SESSION_KEY_PREFIX}{symbol}"


def stream_lease_key(provider: str, key_id: str) -> str:
    """String: the replica holding the one upstream connection of a provider key
    (`key_id` is a digest of the key, never the key)."""
    return f"{STREAM_LEASE_PREFIX}{provider}:{key_id}"
