"""The ingestor's Prometheus metrics (prefix tickwire_ingestor_)."""

from prometheus_client import Counter, Gauge, Histogram

PROVIDER_REQUESTS = Counter(
    "tickwire_ingestor_provider_requests_total",
    "Requests to quote providers (each retry counts) by outcome: ok, transient, rate_limited, "
    "error, malformed", ["provider", "outcome"])
PROVIDER_RETRIES = Counter(
    "tickwire_ingestor_provider_retries_total",
    "Requests repeated after a transient failure", ["provider"])
REJECTED_QUOTES = Counter(
    "tickwire_ingestor_rejected_quotes_total",
    "Symbols whose answer was junk and not published, by reason: malformed, invalid_quote",
    ["provider", "reason"])
CIRCUIT_STATE = Gauge(
    "tickwire_ingestor_circuit_state",
    "Circuit breaker per provider: 0 closed, 1 half-open, 2 open", ["provider"])
BUDGET_REMAINING = Gauge(
    "tickwire_ingestor_rate_budget_remaining",
    "Tokens left in the provider's shared rate-limit bucket, as last seen", ["provider"])
DAY_BUDGET_LEFT = Gauge(
    "tickwire_ingestor_daily_budget_left",
    "Units left today in the provider's shared daily quota, as last seen", ["provider"])
TICKS_PUBLISHED = Counter("tickwire_ingestor_ticks_published_total", "Ticks published")
INGEST_LATENCY = Histogram(
    "tickwire_ingestor_ingest_latency_seconds",
    "From the start of a fetch to the tick being published",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
OWNED_SYMBOLS = Gauge("tickwire_ingestor_owned_symbols",
                      "Active symbols this replica polls (those of its partitions)")
STALE_SYMBOLS = Gauge("tickwire_ingestor_stale_symbols",
                      "Symbols of this replica flagged DATA_STALE")
FEED_STATUS_CHANGES = Counter("tickwire_ingestor_feed_status_changes_total",
                              "DATA_STALE / recovered notices published", ["state"])
KAFKA_LAG = Gauge("tickwire_ingestor_kafka_consumer_lag",
                  "Records of market-data.active-symbols not yet read, per assigned partition",
                  ["partition"])
STREAM_TRADES = Counter("tickwire_ingestor_stream_trades_total",
                        "Trades (last-price events) received from upstream streams", ["stream"])
STREAM_TICKS = Counter("tickwire_ingestor_stream_ticks_total",
                       "Ticks published from stream trades (after conflation)", ["stream"])
STREAM_JUNK = Counter("tickwire_ingestor_stream_junk_frames_total",
                      "Frames from a stream provider that were not its format, dropped",
                      ["stream"])
STREAM_ERRORS = Counter("tickwire_ingestor_stream_errors_total",
                        "Errors a stream provider sent (symbol limits, refused keys), by code",
                        ["stream", "code"])
STREAM_RECONNECTS = Counter("tickwire_ingestor_stream_reconnects_total",
                            "Upstream stream connections lost and retried", ["stream"])
STREAM_CONNECTED = Gauge("tickwire_ingestor_stream_connected",
                         "1 while the stream's upstream connection is open and authenticated",
                         ["stream"])
STREAM_SYMBOLS = Gauge("tickwire_ingestor_stream_symbols",
                       "Symbols this replica streams, per stream", ["stream"])
STREAM_FALLBACKS = Counter("tickwire_ingestor_stream_fallbacks_total",
                           "Streamed symbols handed back to polling, by reason: silent, "
                           "rejected, capacity, disowned", ["stream", "reason"])
STREAM_LATENCY = Histogram(
    "tickwire_ingestor_stream_latency_seconds",
    "From a trade's arrival from its stream to its tick being published",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1))
