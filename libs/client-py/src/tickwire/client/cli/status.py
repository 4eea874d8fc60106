"""`tickwire status`: the stack at a glance from its HTTP endpoints (DESIGN §2).

Every endpoint is read at once; one that does not answer is shown as such and the rest
still print. Exit status 0 only when every service probed is ready.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from tickwire.client.cli.endpoints import Endpoints, base
from tickwire.client.cli.formatting import seconds
from tickwire.client.cli.http import Http, Reply, Unreachable, error_text

TOP_SYMBOLS = 10


async def _read(http: Http, url: str) -> Reply | str:
    try:
        return await http.get(url)
    except Unreachable as exc:
        return exc.reason


def _probes(endpoints: Endpoints) -> dict[str, str]:
    probes = {"load balancer / edge": endpoints.url}
    for n, url in enumerate(endpoints.edge_urls, 1):
        probes[f"edge {n}"] = url
    probes["registry"] = endpoints.registry_url
    probes["ingestor"] = endpoints.ingestor_url
    return probes


async def gather(endpoints: Endpoints) -> dict[str, Any]:
    """Everything the screen shows, as plain data (also what `--json` prints)."""
    probes = _probes(endpoints)
    reads = {f"ready:{name}": f"{base(url)}/readyz" for name, url in probes.items()}
    reads |= {"edges": f"{base(endpoints.registry_url)}/api/edges",
              "symbols": f"{base(endpoints.registry_url)}/api/symbols",
              "providers": f"{base(endpoints.ingestor_url)}/api/providers"}
    async with Http(endpoints.tls()) as http:
        replies = dict(zip(reads, await asyncio.gather(*(_read(http, u) for u in reads.values()))))
    services = []
    for name, url in probes.items():
        reply = replies[f"ready:{name}"]
        if isinstance(reply, str):
            services.append({"name": name, "url": url, "ready": False, "detail": reply})
        else:
            detail = "" if reply.status == 200 else error_text(reply.body)
            services.append({"name": name, "url": url, "ready": reply.status == 200,
                             "detail": detail, "edge": reply.edge})
    return {
        "services": services,
        "edges": _field(replies["edges"], "edges"),
        "symbols": _field(replies["symbols"], "symbols"),
        "providers": _field(replies["providers"], "providers"),
        "ingestorSymbols": _field(replies["providers"], "symbols"),
    }


def _field(reply: Reply | str, key: str) -> Any:
    """The list under `key`, or a string saying why there is none."""
    if isinstance(reply, str):
        return reply
    if reply.status != 200 or not isinstance(reply.body, dict):
        return f"HTTP {reply.status} {error_text(reply.body)}"
    return reply.body.get(key, [])


def render(state: dict[str, Any], console: Console) -> None:
    services = Table(title="services", title_justify="left")
    for column in ("service", "url", "ready", "detail"):
        services.add_column(column)
    for s in state["services"]:
        detail = s["detail"] or (f"answered by {s['edge']}" if s.get("edge") else "")
        services.add_row(s["name"], s["url"], "[green]ready[/]" if s["ready"] else "[red]no[/]",
                         detail)
    console.print(services)
    _table(console, "edges (registry)", state["edges"], ("edge", "lease age", "symbols"),
           lambda e: (e["edgeId"], seconds(e["leaseAgeMs"] / 1000), _count(e["symbols"])))
    symbols = state["symbols"]
    if isinstance(symbols, list):
        symbols = sorted(symbols, key=lambda s: (-s["edges"], s["symbol"]))
        title = f"active symbols: {len(symbols)} (most-watched first)"
        _table(console, title, symbols[:TOP_SYMBOLS], ("symbol", "edges"),
               lambda s: (s["symbol"], str(s["edges"])))
    else:
        _table(console, "active symbols", symbols, (), lambda s: ())
    _table(console, "providers (ingestor)", state["providers"],
           ("provider", "circuit", "budget", "requests", "failures", "last success", "last error"),
           lambda p: (p["name"], p["circuit"], budget(p.get("budget"), p),
                      str(p.get("requests", "")), str(p.get("failures", "")),
                      p.get("lastSuccess") or "–", p.get("lastError") or "–"))


def _count(symbols: Any) -> str:
    return str(len(symbols) if isinstance(symbols, list) else symbols)


def budget(value: Any, provider: dict[str, Any]) -> str:
    """A provider's budget in a line: each of its fields, whatever budgets it has."""
    if not value:
        text = "unlimited"
    elif isinstance(value, dict):
        text = ", ".join(f"{k} {v}" for k, v in value.items())
    else:
        text = str(value)
    if provider.get("rateLimitedForSeconds"):
        text += f" (rate limited {provider['rateLimitedForSeconds']} s)"
    return text


def _table(console: Console, title: str, rows: Any, columns: tuple[str, ...], cells) -> None:
    if isinstance(rows, str):
        console.print(f"[bold]{title}[/]: [red]unavailable[/] ({rows})")
        return
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*cells(row))
    console.print(table)


async def run(endpoints: Endpoints, as_json: bool, console: Console) -> int:
    state = await gather(endpoints)
    if as_json:
        console.file.write(orjson.dumps(state, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        render(state, console)
    return 0 if all(s["ready"] for s in state["services"]) else 1
