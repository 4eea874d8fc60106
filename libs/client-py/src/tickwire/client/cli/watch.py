"""`tickwire watch SYMBOL…`: live quotes through the SDK, as a table, text lines or JSON lines.

The SDK does the work (reconnect, resubscribe, the REST polling fallback); this module
only shows what it yields. `count` / `once` end the watch for scripts and tests.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from tickwire.client.cli.endpoints import Endpoints
from tickwire.client.cli.formatting import age_seconds, change, price, seconds
from tickwire.client.client import ConnectionStatus, TickwireClient, normalise_symbols
from tickwire.client.config import ClientConfig
from tickwire.client.models import Update

REFRESH_SECONDS = 0.25  # ages and the connection line move even when no tick arrives
STATUS_STYLE = {ConnectionStatus.LIVE: "green", ConnectionStatus.DELAYED: "yellow",
                ConnectionStatus.RECONNECTING: "yellow", ConnectionStatus.OFFLINE: "red"}


@dataclass(frozen=True)
class Tuning:
    reconnect_interval: float = 1.0
    max_reconnect_attempts: int = 3
    polling_interval: float = 5.0
    heartbeat_interval: float = 5.0


@dataclass
class Screen:
    """What the watch shows: the newest update per symbol and the connection."""

    symbols: list[str]
    latest: dict[str, Update] = field(default_factory=dict)
    received: int = 0

    def take(self, update: Update) -> None:
        self.latest[update.symbol] = update
        self.received += 1

    def done(self, count: int | None, once: bool) -> bool:
        if count is not None and self.received >= count:
            return True
        return once and all(s in self.latest for s in self.symbols)


def connection_line(client: TickwireClient) -> Text:
    status = client.status
    text = Text()
    text.append(status.value.upper(), style=f"bold {STATUS_STYLE[status]}")
    if status is ConnectionStatus.DELAYED:
        text.append(f"  polling {client.config.rest_base} every "
                    f"{client.config.polling_interval:g} s")
        if client.transport is not None and client.transport.mode == "polling":
            text.append(f" ({client.transport.why})")
    else:
        text.append(f"  {client.config.url}")
    text.append(f"  edge {client.edge_id or '–'}")
    text.append(f"  latency {client.latency:.1f} ms" if client.latency else "  latency –")
    return text


def table(screen: Screen, client: TickwireClient) -> Group:
    grid = Table(expand=False)
    for column, justify in (("symbol", "left"), ("price", "right"), ("change", "right"),
                            ("age", "right"), ("via", "left"), ("seq", "right")):
        grid.add_column(column, justify=justify)
    for symbol in screen.symbols:
        update = screen.latest.get(symbol)
        if update is None:
            grid.add_row(symbol, "–", "–", "–", "waiting", "–")
            continue
        moved = update.data.get("change") or 0
        style = "green" if moved > 0 else "red" if moved < 0 else ""
        grid.add_row(symbol, price(update.data.get("price")),
                     Text(change(update.data), style=style),
                     seconds(age_seconds(update.data)),
                     "push" if update.real_time else "poll", str(update.seq))
    return Group(connection_line(client), grid)


def as_record(update: Update, client: TickwireClient) -> dict[str, Any]:
    data = update.data
    return {"symbol": update.symbol, "price": data.get("price"), "change": data.get("change"),
            "changePercent": data.get("changePercent"), "timestamp": data.get("timestamp"),
            "seq": update.seq, "realTime": update.real_time, "snapshot": update.snapshot,
            "status": client.status.value, "edge": client.edge_id,
            "latencyMs": round(client.latency, 3)}


def text_line(update: Update, client: TickwireClient) -> str:
    return (f"{update.symbol:<8} {price(update.data.get('price')):>12} "
            f"{change(update.data):>18}  age {seconds(age_seconds(update.data))}  "
            f"{'push' if update.real_time else 'poll'}  seq {update.seq}  "
            f"{client.status.value}  edge {client.edge_id or '–'}")


async def run(endpoints: Endpoints, symbols: list[str], *, count: int | None, once: bool,
              output: str, tuning: Tuning, console: Console,
              out: TextIO = sys.stdout) -> int:
    """Watch until `count` updates, until each symbol has one (`once`), or until cancelled.

    `output`: "table" (a live screen), "text" (a line per update and per status change)
    or "json" (a JSON object per line; status changes as {"status": …})."""
    names = normalise_symbols(symbols)
    config = ClientConfig(url=endpoints.ws_url, fallback_url=endpoints.url,
                          ssl_context=_context(endpoints), wire_format="msgpack",
                          **vars(tuning))
    client = TickwireClient(config)
    screen = Screen(names)
    updates = client.updates()
    shown_status: ConnectionStatus | None = None
    live = Live(table(screen, client), console=console, auto_refresh=False) \
        if output == "table" else None

    def show_status() -> None:
        nonlocal shown_status
        if client.status is shown_status:
            return
        shown_status = client.status
        if output == "json":
            out.write(orjson.dumps({"status": shown_status.value,
                                    "edge": client.edge_id}).decode() + "\n")
        elif output == "text":
            out.write(f"# {connection_line(client).plain}\n")
        out.flush()

    # Every change as it happens (a loop pass could miss a short Reconnecting); the
    # closing at exit is not one to show.
    forget = client.on_connection_change(lambda _: show_status()) if output != "table" \
        else (lambda: None)
    try:
        if live is not None:
            live.start()
        await client.connect()
        await client.subscribe(names)
        while not screen.done(count, once):
            try:
                update = await asyncio.wait_for(anext(updates), REFRESH_SECONDS)
            except TimeoutError:
                update = None
            except StopAsyncIteration:
                return 1
            if update is not None:
                screen.take(update)
                if output == "json":
                    out.write(orjson.dumps(as_record(update, client)).decode() + "\n")
                elif output == "text":
                    out.write(text_line(update, client) + "\n")
                out.flush()
            if live is not None:
                live.update(table(screen, client), refresh=True)
        return 0
    finally:
        forget()
        await client.disconnect()
        if live is not None:
            live.stop()


def _context(endpoints: Endpoints):
    tls = endpoints.tls()
    return tls if tls is not True else None
