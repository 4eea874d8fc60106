"""`tickwire quote SYMBOL…`: one REST read per symbol, printed as text or JSON."""

from __future__ import annotations

import sys
from urllib.parse import quote as escape

import orjson

from tickwire.client.cli.endpoints import Endpoints, base
from tickwire.client.cli.formatting import quote_line
from tickwire.client.cli.http import Http, error_text
from tickwire.client.client import normalise_symbols


async def run(endpoints: Endpoints, symbols: list[str], as_json: bool) -> int:
    """0 when every symbol had a quote; 1 when any was missing or refused."""
    names = normalise_symbols(symbols)
    failed = False
    found = []
    async with Http(endpoints.tls()) as http:
        for symbol in names:
            reply = await http.get(f"{base(endpoints.url)}/api/quotes/{escape(symbol, safe='')}")
            if reply.status == 200 and isinstance(reply.body, dict):
                found.append(reply.body)
                if not as_json:
                    print(quote_line(reply.body, reply.edge))
            else:
                failed = True
                print(f"{symbol}: HTTP {reply.status} {error_text(reply.body)}", file=sys.stderr)
    if as_json:
        # One symbol prints its quote object, several print a list: both are what the
        # edge's REST API answers, so scripts read the same shapes.
        out = found[0] if len(names) == 1 and found else found
        if found or len(names) > 1:
            sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 1 if failed else 0
