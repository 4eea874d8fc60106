"""tickwire.client: the Python client SDK (DESIGN.md §6).

    client = TickwireClient(ClientConfig(url="ws://127.0.0.1:8080/ws"))
    await client.connect()
    await client.subscribe(["AAPL", "MSFT"])
    async for update in client.updates():
        ...
"""

from tickwire.client.backoff import backoff_delay, backoff_step
from tickwire.client.client import ConnectionStatus, TickwireClient
from tickwire.client.config import ClientConfig
from tickwire.client.models import (ConnectionFailed, ConnectionMetrics, ConnectionState,
                                    FallbackError, QueueFull, ServerError, TickwireError,
                                    Update)

__all__ = [
    "ClientConfig", "ConnectionFailed", "ConnectionMetrics", "ConnectionState",
    "ConnectionStatus", "FallbackError", "QueueFull", "ServerError", "TickwireClient",
    "TickwireError", "Update", "backoff_delay", "backoff_step",
]
