"""tickwire registry: who wants which symbol, kept exact in Redis from Kafka events."""
