"""Every Redis key, Redis channel and Kafka topic name tickwire uses (DESIGN.md §4).

Symbols are upper-case, so the lower-case suffixes below never collide with a symbol.
"""

# Redis Pub/Sub
TICK_CHANNEL_PREFIX = "market-data:updates:"
CONTROL_CHANNEL = "market-data:control"
# One channel for every symbol's feed-status changes (models.FeedStatus, msgpack): changes
# are rare, so each edge listens to all of them and keeps those its clients want.
STATUS_CHANNEL = "market-data:status"

# Redis keys
QUOTE_KEY_PREFIX = "quote:"
SEQ_KEY_PREFIX = "market-data:seq:"
ACTIVE_SYMBOLS_KEY = "market-data:active-symbols"
EDGES_KEY = "market-data:edges"
REGISTRY_OUTBOX_KEY = "market-data:registry:outbox"
REGISTRY_LEADER_KEY = "market-data:registry:leader"
FEED_KEY_PREFIX = "market-data:feed:"
RATE_BUCKET_PREFIX = "market-data:ratelimit:"
REGISTRY_PROGRESS_KEY = "market-data:registry:progress"  # hash partition -> caught-up time (ms)

# Kafka
SUBSCRIPTIONS_TOPIC = "market-data.subscriptions"
ACTIVE_SYMBOLS_TOPIC = "market-data.active-symbols"
REGISTRY_GROUP = "registry"
INGESTOR_GROUP = "ingestor"


def tick_channel(symbol: str) -> str:
    return f"{TICK_CHANNEL_PREFIX}{symbol}"


def symbol_from_channel(channel: str) -> str:
    return channel[len(TICK_CHANNEL_PREFIX):]


def quote_key(symbol: str) -> str:
    return f"{QUOTE_KEY_PREFIX}{symbol}"


def seq_key(symbol: str) -> str:
    """Hash {seq, epoch}: the tick counter of a symbol and the id of its lifetime."""
    return f"{SEQ_KEY_PREFIX}{symbol}"


def feed_key(symbol: str) -> str:
    """Hash {fetchedAt, stale}: when a provider last answered for the symbol (Unix ms, any
    ingestor replica) and "1" while its data is flagged stale (see models.FeedStatus)."""
    return f"{FEED_KEY_PREFIX}{symbol}"


def rate_bucket_key(provider: str) -> str:
    """Hash {tokens, ts}: the token bucket all ingestor replicas share for one provider."""
    return f"{RATE_BUCKET_PREFIX}{provider}"


SYMBOL_EDGES_PREFIX = "market-data:symbol:"
SYMBOL_EDGES_SUFFIX = ":edges"


def symbol_edges_key(symbol: str) -> str:
    return f"{SYMBOL_EDGES_PREFIX}{symbol}{SYMBOL_EDGES_SUFFIX}"


def edge_symbols_key(edge_id: str) -> str:
    return f"market-data:edge:{edge_id}:symbols"


def edge_lease_key(edge_id: str) -> str:
    """Hash {seen, heartbeat}: the edge's clock at its newest event and newest heartbeat."""
    return f"market-data:edge:{edge_id}:lease"


def edge_stamps_key(edge_id: str) -> str:
    """Hash symbol → ts of the newest event applied for (edge, symbol); older ones are stale."""
    return f"market-data:edge:{edge_id}:stamps"


def edge_down_key(edge_id: str) -> str:
    """Tombstone of an edge that left: its late events are ignored."""
    return f"market-data:edge:{edge_id}:down"


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
