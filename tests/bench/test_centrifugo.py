"""The storm's optional comparator (bench/centrifugo.py): where the benchmark looks for a
Centrifugo binary, the one line it prints when it skips the comparison, how the feed reads
the API's answers, and, where a binary is found, that the configuration it generates
gives a Centrifugo on the Redis engine that takes the feed's publishes and, in cache
recovery mode, answers a subscribe with the channel's latest publication."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import urllib.request
from pathlib import Path

import aiohttp
import pytest
import redis

REPO = Path(__file__).resolve().parents[2]
# The repository's `bench` package, not the `tests/bench` folder (see test_capacity.py).
sys.path.insert(0, str(REPO))

from bench import centrifugo  # noqa: E402
from bench.centrifugo_feed import http_body  # noqa: E402
from bench.run import parse_args, storm_lineup  # noqa: E402
from tickwire.localstack import free_port, start_redis  # noqa: E402


def test_the_env_var_names_the_binary(tmp_path: Path, monkeypatch):
    binary = tmp_path / "centrifugo"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv(centrifugo.BINARY_ENV, str(binary))
    assert centrifugo.find_binary() == (binary, f"${centrifugo.BINARY_ENV}")
    monkeypatch.setenv(centrifugo.BINARY_ENV, str(tmp_path / "missing"))
    found, why = centrifugo.find_binary()
    assert found is None and str(tmp_path / "missing") in why


def test_install_keeps_a_binary_of_the_version_and_builds_over_another(tmp_path, monkeypatch):
    monkeypatch.setattr(centrifugo, "INSTALL_DIR", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "no-go-here"))   # a build would fail: no go
    binary = tmp_path / "centrifugo"
    binary.write_text(f"#!/bin/sh\necho 'Centrifugo v{centrifugo.VERSION} (Go version: go1)'\n")
    binary.chmod(0o755)
    assert centrifugo.install() == 0
    binary.write_text("#!/bin/sh\necho 'Centrifugo v6.0.0 (Go version: go1)'\n")
    assert centrifugo.install() == 1   # another version: rebuilt, here without go


def test_without_a_binary_the_storm_runs_tickwire_alone_and_says_why(tmp_path, monkeypatch,
                                                                     capsys):
    monkeypatch.setenv(centrifugo.BINARY_ENV, str(tmp_path / "missing"))
    systems, comparator = storm_lineup(parse_args([]))
    assert systems == ["tickwire"]
    assert comparator == {"skipped": centrifugo.find_binary()[1]}
    assert capsys.readouterr().out == f"storm: centrifugo skipped: {comparator['skipped']}\n"


def test_the_comparison_is_for_plain_json_clients(tmp_path, monkeypatch, capsys):
    binary = tmp_path / "centrifugo"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv(centrifugo.BINARY_ENV, str(binary))
    systems, comparator = storm_lineup(parse_args(["--msgpack"]))
    assert systems == ["tickwire"] and "plain JSON" in comparator["skipped"]
    assert capsys.readouterr().out.count("\n") == 1


def test_the_feed_reads_whole_answers_with_a_length_or_chunked():
    head = b"http/1.1 200 ok\r\ncontent-length: 11"
    answer = bytearray(b'{"a":"b"}\r\nHTTP/1.1')  # the body, then the next answer's start
    assert http_body(head, answer, 0) == (b'{"a":"b"}\r\n', 11)
    assert http_body(head, bytearray(b'{"a":'), 0) is None
    head = b"http/1.1 200 ok\r\ntransfer-encoding: chunked"
    chunked = b'5\r\n{"rep\r\n8\r\nlies":[]\r\n1\r\n}\r\n0\r\n\r\n'
    assert http_body(head, bytearray(chunked + b"HTTP/1.1"), 0) == (b'{"replies":[]}',
                                                                  len(chunked))
    for cut in range(len(chunked)):
        assert http_body(head, bytearray(chunked[:cut]), 0) is None, cut


def api(port: int, method: str, body: dict) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/{method}",
                                     data=json.dumps(body).encode(),
                                     headers={"X-API-Key": centrifugo.API_KEY})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def running_centrifugo(tmp_path: Path, snapshots: bool = False):
    """(Centrifugo's port, its Redis's port): a real Redis and Centrifugo, both stopped
    by PID afterwards; the test is skipped where there is no Centrifugo binary."""
    binary, why = centrifugo.find_binary()
    if binary is None:
        pytest.skip(f"Centrifugo is an optional benchmark comparator: {why}")
    redis_port, port = free_port(), free_port()
    redis_server = start_redis(redis_port, tmp_path / "redis")
    server = None
    try:
        server = centrifugo.start(binary, port, f"redis://127.0.0.1:{redis_port}/0",
                                  tmp_path, "centrifugo", snapshots=snapshots)
        yield port, redis_port
    finally:
        if server is not None:
            server.stop()
        redis_server.stop()


@pytest.mark.timeout(120)
def test_the_generated_config_runs_on_the_redis_engine(tmp_path: Path):
    with running_centrifugo(tmp_path) as (port, redis_port):
        published = api(port, "batch", {"commands": [
            {"publish": {"channel": centrifugo.channel("AAAA"), "data": {"seq": 1}}},
            {"publish": {"channel": "elsewhere:AAAA", "data": {"seq": 1}}}]})
        assert published["replies"][0] == {"publish": {}}
        assert "error" in published["replies"][1]  # only the quotes namespace exists
        # The Redis engine's broker listens on Redis under the configured prefix.
        channels = redis.Redis(port=redis_port).pubsub_channels()
        assert b"tickwire-bench-centrifugo.control" in channels


async def subscribe_reply(port: int, channel: str, recover: bool) -> dict:
    """The reply to one subscribe, sent with a connect as CentrifugoClient does."""
    async with aiohttp.ClientSession() as http, \
            http.ws_connect(f"ws://127.0.0.1:{port}/connection/websocket") as ws:
        subscribe = {"channel": channel, **({"recover": True} if recover else {})}
        await ws.send_str('{"id":1,"connect":{}}\n' + json.dumps({"id": 2, "subscribe": subscribe}))
        while True:
            message = await ws.receive(timeout=10)
            for line in message.data.split("\n"):
                reply = json.loads(line)
                if reply.get("id") == 2:
                    return reply


@pytest.mark.timeout(120)
@pytest.mark.parametrize("snapshots", [True, False])
def test_cache_recovery_mode_answers_a_subscribe_with_the_latest_publication(
        tmp_path: Path, snapshots: bool):
    with running_centrifugo(tmp_path, snapshots) as (port, _):
        channel = centrifugo.channel("AAAA")
        for seq in (1, 2):
            api(port, "publish", {"channel": channel, "data": {"seq": seq}})
        reply = asyncio.run(subscribe_reply(port, channel, recover=True))
        assert "error" not in reply
        publications = reply["subscribe"].get("publications", [])
        assert [p["data"] for p in publications] == ([{"seq": 2}] if snapshots else [])
