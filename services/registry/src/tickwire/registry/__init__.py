"""tickwire registry: who wants which symbol, kept exact in Redis from Kafka events.

Modules, one job each:
- `state` / `lua`: the Redis sets and the atomic, idempotent transitions that change them.
- `consumer`: applies `market-data.subscriptions` (at-least-once, commit after the write).
- `progress`: how far the topic has been read; `expiry` removes edges only past that.
- `announcer`: the elected replica publishes activity changes to `market-data.active-symbols`.
- `health` / `retry`: readiness, and waiting for Redis and Kafka with backoff and jitter.
- `runtime`: start-up and ordered shutdown; `app`: HTTP; `metrics`: /metrics.
"""
