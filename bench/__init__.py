"""tickwire's benchmark: one edge (or the baseline forwarder) under a synthetic market.

Run with `make bench` or `uv run --frozen python -m bench.run --help`. The runner starts
Redis and Kafka, then for each trial one server process, a tick injector process and
several load-generator processes; every message is accounted by `seq` and timed from the
tick's `publishedAt` to its arrival at the client.
"""
