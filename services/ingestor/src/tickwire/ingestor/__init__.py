"""tickwire ingestor: fetches quotes of active symbols, caches and publishes ticks."""
