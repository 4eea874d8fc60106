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
