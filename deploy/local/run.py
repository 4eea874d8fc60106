"""`make run`: Redis, Kafka, registry, ingestor, two edges and HAProxy (plain and TLS) on
loopback, in the foreground, supervised: a child that exits is restarted with backoff on
the same ports and data directory while the others ride through. Ctrl-C or SIGTERM (or
`make down`) stops everything it started, newest first.

Environment variables given to `make run` reach every service (TICKWIRE_*, OTEL_*).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from tickwire.localstack import StackPorts, StartError, Supervisor, ensure_tls, start_stack
from tickwire.localstack.infra import cache_dir

ROOT = Path(__file__).resolve().parents[2]
RUN_DIR = ROOT / ".run"
PIDS = RUN_DIR / "pids"


def write_pids(processes) -> None:
    """`make down` reads this: this supervisor first, so it stops before its children."""
    lines = [f"{os.getpid()} supervisor"] + [f"{p.pid} {p.name}" for p in processes]
    PIDS.write_text("".join(line + "\n" for line in lines))


def main() -> int:
    RUN_DIR.mkdir(exist_ok=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    ports = StackPorts()
    supervisor = Supervisor(log=lambda line: print(f"make run: {line}", file=sys.stderr, flush=True),
                            on_change=write_pids)
    write_pids([])
    try:
        tls = ensure_tls(cache_dir() / "tls")
        start_stack(supervisor, ports, RUN_DIR, tls, say=lambda line: print(line, flush=True))
    except (StartError, OSError) as exc:
        print(f"make run: {exc}", file=sys.stderr)
        failed = True
    else:
        failed = False
        lb, tls_lb = f"127.0.0.1:{ports.lb}", f"127.0.0.1:{ports.tls}"
        (edge1, port1), (edge2, port2) = ports.edges
        print(f"""
tickwire is running (logs in {RUN_DIR}/logs):
  dashboard        http://{lb}/   https://{tls_lb}/
  websocket        ws://{lb}/ws   wss://{tls_lb}/ws
  quotes (REST)    http://{lb}/api/quotes/AAPL
  edges            http://127.0.0.1:{port1}/  http://127.0.0.1:{port2}/
  registry         http://127.0.0.1:{ports.registry}/api/symbols
  ingestor         http://127.0.0.1:{ports.ingestor}/api/providers
  redis / kafka    127.0.0.1:{ports.redis} / 127.0.0.1:{ports.kafka}
  TLS CA           {tls.ca} (trust it for https/wss on {ports.tls})
A crashed process is restarted; Ctrl-C stops everything.""", flush=True)
        supervisor.run(stop)
    print("stopping ...", flush=True)
    supervisor.stop()
    PIDS.unlink(missing_ok=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
