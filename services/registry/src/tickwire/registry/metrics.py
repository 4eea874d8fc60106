"""Every Prometheus metric the registry exports on /metrics (prefix `tickwire_registry_`)."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("tickwire_registry_events_total", "Subscription events applied to Redis",
                 ["type"])
STALE_EVENTS = Counter("tickwire_registry_stale_events_total",
                       "Events older than what they speak about (late or replayed); no effect")
INVALID_EVENTS = Counter("tickwire_registry_invalid_events_total",
                         "Records on the subscriptions topic that were not events (skipped)")
APPLY_SECONDS = Histogram("tickwire_registry_apply_seconds",
                          "Time to apply one fetched batch of events to Redis, retries included")
ACTIVITY_CHANGES = Counter("tickwire_registry_activity_changes_total",
                           "Symbols that became active or inactive")
EDGES_EXPIRED = Counter("tickwire_registry_edges_expired_total", "Edges removed by lease expiry")
COMMIT_FAILURES = Counter("tickwire_registry_commit_failures_total",
                          "Offset commits refused (the partition moved; its events are re-applied)")
CONSUMER_LAG = Gauge("tickwire_registry_consumer_lag",
                     "Records of market-data.subscriptions not yet applied, per assigned partition",
                     ["partition"])

ANNOUNCEMENTS = Counter("tickwire_registry_announcements_total",
                        "Activity changes published to market-data.active-symbols")
OUTBOX = Gauge("tickwire_registry_outbox_entries", "Activity changes waiting to be published")
LEADER = Gauge("tickwire_registry_leader", "1 while this replica publishes the outbox")

ACTIVE_SYMBOLS = Gauge("tickwire_registry_active_symbols", "Symbols with at least one edge")
EDGES = Gauge("tickwire_registry_edges", "Edges known to the registry")

DEPENDENCY_UP = Gauge("tickwire_registry_dependency_up",
                      "1 while the dependency answers", ["dependency"])
RETRIES = Counter("tickwire_registry_retries_total",
                  "Attempts that failed on an unavailable dependency and were retried",
                  ["operation"])
LOOP_RESTARTS = Counter("tickwire_registry_loop_restarts_total",
                        "Background loops restarted after an unexpected error", ["loop"])
