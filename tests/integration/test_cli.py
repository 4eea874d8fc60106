"""The `tickwire` command against the real stack: quote, status, watch and its polling fallback."""

from __future__ import annotations

import json
import re

from integration.cliproc import Watch, run
from integration.wsblocker import WsBlocker
from integration.wsclient import WsClient, eventually


def seqs_increase(records: list[dict], symbol: str) -> bool:
    seqs = [r["seq"] for r in records if r.get("symbol") == symbol]
    return len(seqs) >= 1 and seqs == sorted(set(seqs))


async def test_watch_prints_live_updates_then_exits_after_count(stack):
    lb = stack.full()
    result = await run("--url", lb.url, "watch", "aapl", "MSFT", "--count", "6", "--json")
    assert result.code == 0, result.err
    records = [json.loads(line) for line in result.out.splitlines()]
    updates = [r for r in records if "symbol" in r]
    assert len(updates) == 6
    assert {"status": "live"} in [{"status": r["status"]} for r in records if "symbol" not in r]
    assert {u["symbol"] for u in updates} <= {"AAPL", "MSFT"}
    assert all(u["price"] > 0 and u["realTime"] and u["edge"] in {"edge-1", "edge-2"}
               for u in updates)
    assert seqs_increase(updates, "AAPL") and seqs_increase(updates, "MSFT")


async def test_watch_once_as_text_and_as_a_table(stack):
    lb = stack.full()
    text = await run("watch", "AAPL", "NVDA", "--once", "--url", lb.url)
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert any(line.startswith("# LIVE") and lb.ws_url in line for line in lines)
    quotes = [line for line in lines if not line.startswith("#")]
    assert {line.split()[0] for line in quotes} >= {"AAPL", "NVDA"}
    assert all(re.search(r"\bpush\b.*\bseq \d+", line) for line in quotes)

    table = await run("watch", "AAPL", "--once", "--output", "table", "--url", lb.url)
    assert table.code == 0, table.err
    assert "LIVE" in table.out and re.search(r"AAPL .*\d+\.\d\d", table.out)
    assert "edge edge-" in table.out


async def test_quote_reads_one_cached_quote_as_text_or_json(stack):
    lb = stack.full()
    warm = await run("--url", lb.url, "watch", "AAPL", "--once", "--json")  # makes AAPL cached
    assert warm.code == 0, warm.err

    as_json = await run("--url", lb.url, "quote", "AAPL", "--json")
    assert as_json.code == 0, as_json.err
    body = as_json.json()
    assert body["symbol"] == "AAPL" and body["price"] > 0 and body["source"].startswith("simulated")
    assert isinstance(body["stale"], bool) and body["ageMs"] >= 0 and body["seq"] >= 1

    as_text = await run("--url", lb.url, "quote", "aapl")
    assert as_text.code == 0, as_text.err
    fields = as_text.out.split()
    assert fields[0] == "AAPL" and re.fullmatch(r"[\d,]+\.\d\d", fields[1])
    assert "source simulated" in as_text.out and re.search(r"edge edge-[12]", as_text.out)


async def test_quote_says_what_is_wrong(stack):
    lb = stack.full()
    invalid = await run("--url", lb.url, "quote", "no such!")
    assert invalid.code == 2 and "invalid symbols: NO SUCH!" in invalid.err

    down = await run("--url", "http://127.0.0.1:9", "quote", "AAPL")
    assert down.code == 1 and "cannot connect" in down.err and down.out == ""


async def test_status_shows_edges_registry_and_providers(stack):
    registry, ingestor = stack.registry(), stack.ingestor()
    edges = [stack.edge("edge-1").url, stack.edge("edge-2").url]
    lb = stack.haproxy()
    urls = ("--url", lb.url, "--registry-url", registry.url, "--ingestor-url", ingestor.url,
            "--edge", edges[0], "--edge", edges[1])
    watcher = await WsClient.connect(lb.ws_url)
    try:
        await watcher.send({"action": "subscribe", "symbols": ["AAPL"]})
        await watcher.updates("AAPL", 2)

        state = await _status_until(urls, lambda s: any(x["symbol"] == "AAPL"
                                                        for x in s["symbols"]))
        assert [s["ready"] for s in state["services"]] == [True] * 5
        assert {s["edge"] for s in state["services"][1:3]} == {"edge-1", "edge-2"}
        assert {e["edgeId"] for e in state["edges"]} == {"edge-1", "edge-2"}
        assert [p["name"] for p in state["providers"]] == ["simulated"]
        assert "AAPL" in state["ingestorSymbols"]

        text = await run(*urls, "status")
        assert text.code == 0, text.err
        for expected in ("registry", "ingestor", "edge-1", "edge-2", "simulated", "closed",
                         "AAPL", "active symbols: 1"):
            assert expected in text.out, expected
    finally:
        await watcher.close()

    registry.process.stop()
    partial = await run(*urls, "status")
    assert partial.code == 1
    assert re.search(r"registry .*no .*cannot connect", partial.out)
    assert "edges (registry): unavailable" in partial.out
    assert "simulated" in partial.out  # the ingestor still answers


async def test_watch_falls_back_to_polling_and_returns_live(stack):
    lb = stack.full()
    blocker = await WsBlocker(lb.port).start()
    # Another client keeps AAPL active upstream, so the polled price moves.
    keeper = await WsClient.connect(lb.ws_url)
    await keeper.send({"action": "subscribe", "symbols": ["AAPL"]})
    watch = await Watch.start("--url", blocker.url, "watch", "AAPL", "--json",
                              "--reconnect-interval", "0.05", "--max-reconnect-attempts", "2",
                              "--polling-interval", "0.5")
    try:
        await watch.until(lambda r: r.get("symbol") == "AAPL" and r["realTime"])

        blocker.block()
        await watch.until(lambda r: r.get("status") == "delayed")
        polled = [await watch.until(lambda r: r.get("symbol") == "AAPL" and not r["realTime"])
                  for _ in range(2)]
        assert polled[0]["seq"] < polled[1]["seq"] and polled[1]["status"] == "delayed"

        blocker.unblock()
        await watch.until(lambda r: r.get("status") == "live", timeout=40)
        back = await watch.until(lambda r: r.get("symbol") == "AAPL" and r["realTime"])
        assert back["seq"] > polled[1]["seq"]
        shown = [r["status"] for r in watch.lines if "symbol" not in r]
        assert _in_order(shown, ["live", "reconnecting", "delayed", "live"]), shown
    finally:
        code = await watch.stop()
        await keeper.close()
        await blocker.stop()
    assert code == 130  # interrupted, as Ctrl-C would


def _in_order(seen: list[str], wanted: list[str]) -> bool:
    it = iter(seen)
    return all(any(s == w for s in it) for w in wanted)


async def _status_until(urls, check, timeout: float = 30.0) -> dict:
    async def attempt():
        result = await run(*urls, "status", "--json")
        state = result.json()
        return state if check(state) else None
    return await eventually(attempt, timeout=timeout, interval=0.5)
