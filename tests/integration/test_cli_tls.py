"""The CLI and SDK over https:// and wss:// with a private CA (`--ca-file`, `ClientConfig.ca_file`).

A TLS-terminating pipe in the test's event loop stands in front of HAProxy with a
certificate made for 127.0.0.1 by `openssl`; trusting it takes the CA file, and without
it the connection is refused for the certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import subprocess
from pathlib import Path

import pytest

from tickwire.client import ClientConfig, ConnectionState, TickwireClient

from integration.cliproc import run


def make_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    return cert, key


class TlsPipe:
    """Accepts TLS on a free port and pipes the plain bytes to `upstream_port`."""

    def __init__(self, upstream_port: int, cert: Path, key: Path):
        self._upstream = upstream_port
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(cert, key)
        self._tasks: set[asyncio.Task] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> TlsPipe:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0,
                                                  ssl=self._context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader, writer) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            up_writer.close()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    @staticmethod
    async def _pipe(source, sink) -> None:
        try:
            while chunk := await source.read(65536):
                sink.write(chunk)
                await sink.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                sink.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def test_cli_and_sdk_trust_a_private_ca_for_https_and_wss(stack, tmp_path):
    lb = stack.full()
    cert, key = make_certificate(tmp_path)
    pipe = await TlsPipe(lb.port, cert, key).start()
    url = f"https://127.0.0.1:{pipe.port}"
    try:
        watched = await run("--url", url, "--ca-file", str(cert), "watch", "AAPL", "--once",
                            "--json")
        assert watched.code == 0, watched.err
        update = next(json.loads(line) for line in watched.out.splitlines() if '"symbol"' in line)
        assert update["realTime"] and update["price"] > 0  # pushed over wss://

        quoted = await run("quote", "AAPL", "--url", url, "--ca-file", str(cert))
        assert quoted.code == 0 and quoted.out.startswith("AAPL"), quoted.err

        untrusted = await run("quote", "AAPL", "--url", url)
        assert untrusted.code == 1 and "certificate verify failed" in untrusted.err

        client = TickwireClient(ClientConfig(url=f"wss://127.0.0.1:{pipe.port}/ws",
                                             ca_file=str(cert)))
        await client.connect()
        try:
            assert client.state is ConnectionState.OPEN and client.edge_id is not None
        finally:
            await client.disconnect()
    finally:
        await pipe.stop()


async def test_an_unreadable_ca_file_is_a_configuration_error(tmp_path):
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="ca_file"):
        ClientConfig(url="wss://127.0.0.1:1/ws", ca_file=missing)
    result = await run("quote", "AAPL", "--url", "https://127.0.0.1:1", "--ca-file", missing)
    assert result.code == 2 and "--ca-file" in result.err and "No such file" in result.err
