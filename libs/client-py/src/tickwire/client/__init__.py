"""tickwire.client: the Python client SDK."""
