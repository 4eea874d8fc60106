"""The `tickwire` command: `watch`, `quote` and `status` against a running stack."""

from __future__ import annotations

import argparse
import asyncio
import sys

from rich.console import Console

from tickwire.client.cli import quote, status, watch
from tickwire.client.cli.endpoints import ENVIRONMENT, Endpoints, env
from tickwire.client.cli.http import Unreachable


def parser() -> argparse.ArgumentParser:
    variables = "\n".join(f"  {name}  {meaning} (default {default or 'none'})"
                          for name, (default, meaning) in ENVIRONMENT.items())
    top = argparse.ArgumentParser(
        prog="tickwire", description="Live stock quotes from a tickwire stack.",
        epilog=f"environment:\n{variables}", formatter_class=argparse.RawDescriptionHelpFormatter)
    _endpoint_options(top, defaults=True)
    commands = top.add_subparsers(dest="command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    _endpoint_options(common, defaults=False)
    w = commands.add_parser("watch", parents=[common], help="a live table of quotes (WebSocket, polling fallback)")
    w.add_argument("symbols", nargs="+")
    w.add_argument("--count", type=_positive_int, metavar="N",
                   help="exit after N updates")
    w.add_argument("--once", action="store_true", help="exit once every symbol has a quote")
    w.add_argument("--output", choices=("table", "text", "json"),
                   help="table on a terminal, else a text line per update (default)")
    w.add_argument("--json", dest="output", action="store_const", const="json",
                   help="same as --output json: a JSON object per line")
    w.add_argument("--reconnect-interval", type=_positive_float, default=1.0, metavar="S")
    w.add_argument("--max-reconnect-attempts", type=_positive_int, default=3, metavar="N",
                   help="failed attempts before polling (default %(default)s)")
    w.add_argument("--polling-interval", type=_positive_float, default=5.0, metavar="S")

    q = commands.add_parser("quote", parents=[common], help="the cached quote of each symbol (one REST read)")
    q.add_argument("symbols", nargs="+")
    q.add_argument("--json", action="store_true", help="print the edge's JSON")

    s = commands.add_parser("status", parents=[common], help="edges, registry, ingestor providers and budgets")
    s.add_argument("--json", action="store_true")
    return top


def _endpoint_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """The endpoint options, before or after the command (`tickwire quote AAPL --url …`).

    After the command they default to SUPPRESS, so they override only when given."""
    def default(value):
        return value if defaults else argparse.SUPPRESS
    edges = [u for u in env("TICKWIRE_CLI_EDGE_URLS").split(",") if u.strip()]
    parser.add_argument("--url", default=default(env("TICKWIRE_CLI_URL")),
                        help="edge or load balancer base URL (default %(default)s)"
                        if defaults else argparse.SUPPRESS)
    parser.add_argument("--registry-url", default=default(env("TICKWIRE_CLI_REGISTRY_URL")),
                        help=None if defaults else argparse.SUPPRESS)
    parser.add_argument("--ingestor-url", default=default(env("TICKWIRE_CLI_INGESTOR_URL")),
                        help=None if defaults else argparse.SUPPRESS)
    parser.add_argument("--edge", action="append", dest="edges", metavar="URL",
                        default=default(edges),
                        help="an edge to probe directly in `status` (repeatable)"
                        if defaults else argparse.SUPPRESS)
    parser.add_argument("--ca-file", default=default(env("TICKWIRE_CLI_CA_FILE") or None),
                        help="PEM certificates to trust for https:// and wss://"
                        if defaults else argparse.SUPPRESS)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


async def _dispatch(args: argparse.Namespace, endpoints: Endpoints) -> int:
    console = Console()
    if args.command == "quote":
        return await quote.run(endpoints, args.symbols, args.json)
    if args.command == "status":
        return await status.run(endpoints, args.json, console)
    output = args.output or ("table" if console.is_terminal else "text")
    tuning = watch.Tuning(reconnect_interval=args.reconnect_interval,
                          max_reconnect_attempts=args.max_reconnect_attempts,
                          polling_interval=args.polling_interval)
    return await watch.run(endpoints, args.symbols, count=args.count, once=args.once,
                           output=output, tuning=tuning, console=console)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    endpoints = Endpoints(url=args.url, registry_url=args.registry_url,
                          ingestor_url=args.ingestor_url, edge_urls=tuple(args.edges or ()),
                          ca_file=args.ca_file)
    try:
        return asyncio.run(_dispatch(args, endpoints))
    except (ValueError, Unreachable) as exc:
        print(f"tickwire: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    except KeyboardInterrupt:
        return 130
