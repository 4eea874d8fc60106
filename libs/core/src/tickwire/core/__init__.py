"""tickwire.core: what every tickwire service shares (imported, never run)."""
