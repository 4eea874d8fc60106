"""Centrifugo 6.9.1, the storm trial's comparator (issue #20): where its binary is, how to
build it, and how a trial starts it.

Guarantees:
- `find_binary()` names an executable file or says why there is none; the benchmark never
  needs one (without it the comparison is skipped).
- `start()` returns a Centrifugo that answers `/health` on 127.0.0.1:`port`: anonymous
  clients may connect without a token and subscribe to any `quotes:<SYMBOL>` channel,
  the server HTTP API takes `API_KEY`, and the engine is Redis on the given URL
  (publications go through Redis Pub/Sub, as tickwire's ticks do). Its owner stops it by
  PID.
- With `snapshots`, the namespace is in Centrifugo's cache recovery mode (a history of
  one publication per channel, kept in Redis): a subscribe that asks to recover gets the
  channel's latest publication in its reply, the work tickwire's snapshot on subscribe
  does. Without, a subscription gets nothing until the next publication.

`uv run --frozen python -m bench.centrifugo` says which binary the benchmark would use;
`--install` builds 6.9.1 into ~/.cache/tickwire/centrifugo with `go install` (once: a
binary already there that reports 6.9.1 is kept).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tickwire.localstack import ManagedProcess, wait_http_ok

VERSION = "6.9.1"
MODULE = "github.com/centrifugal/centrifugo/v6"
BINARY_ENV = "TICKWIRE_BENCH_CENTRIFUGO"
INSTALL_DIR = Path.home() / ".cache" / "tickwire" / "centrifugo"
NAMESPACE = "quotes"
API_KEY = "tickwire-bench"


def channel(symbol: str) -> str:
    """The channel a symbol's ticks are published to."""
    return f"{NAMESPACE}:{symbol}"


def find_binary() -> tuple[Path | None, str]:
    """(the binary, where it was found) or (None, why there is none): $TICKWIRE_BENCH_CENTRIFUGO,
    else `centrifugo` on PATH, else the one `--install` builds."""
    named = os.environ.get(BINARY_ENV)
    if named:
        path = Path(named).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path, f"${BINARY_ENV}"
        return None, f"${BINARY_ENV}={named} is not an executable file"
    on_path = shutil.which("centrifugo")
    if on_path:
        return Path(on_path), "PATH"
    built = INSTALL_DIR / "centrifugo"
    if built.is_file() and os.access(built, os.X_OK):
        return built, str(INSTALL_DIR)
    return None, (f"no ${BINARY_ENV}, no centrifugo on PATH, nothing in {INSTALL_DIR} "
                  "(build it: uv run --frozen python -m bench.centrifugo --install)")


def version(binary: Path) -> str:
    """What the binary says it is (`centrifugo version`)."""
    out = subprocess.run([str(binary), "version"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def namespace(snapshots: bool) -> dict:
    """The `quotes` namespace: open to anonymous clients; with `snapshots`, cache recovery
    mode (https://centrifugal.dev/docs/server/cache_recovery)."""
    options = {"name": NAMESPACE, "allow_subscribe_for_anonymous": True,
               "allow_subscribe_for_client": True}
    if snapshots:
        options.update(history_size=1, history_ttl="600s", force_recovery=True,
                       force_recovery_mode="cache")
    return options


def config(port: int, redis_url: str, snapshots: bool = False) -> dict:
    """The configuration of a benchmark Centrifugo (6.x keys)."""
    return {
        "http_server": {"address": "127.0.0.1", "port": port},
        "log": {"level": "info"},
        "engine": {"type": "redis",
                   "redis": {"address": [redis_url], "prefix": "tickwire-bench-centrifugo"}},
        "client": {"allow_anonymous_connect_without_token": True},
        "channel": {"namespaces": [namespace(snapshots)]},
        "http_api": {"key": API_KEY},
        "health": {"enabled": True},
        "usage_stats": {"disabled": True},
    }


def start(binary: Path, port: int, redis_url: str, workdir: Path, name: str,
          snapshots: bool = False) -> ManagedProcess:
    """Write the configuration into `workdir`, start Centrifugo, wait until it is healthy."""
    path = workdir / f"{name}.json"
    path.write_text(json.dumps(config(port, redis_url, snapshots), indent=2))
    process = ManagedProcess(name, [str(binary), "--config", str(path)],
                             workdir / f"{name}.log", cwd=workdir).start()
    try:
        wait_http_ok(process, f"http://127.0.0.1:{port}/health", 60)
    except Exception:
        process.stop()
        raise
    return process


def install_command() -> list[str]:
    """`go install` of 6.9.1, with its version stamped in (a plain `go install` reports 0.0.0)."""
    return ["go", "install", "-ldflags", f"-X {MODULE}/internal/build.Version={VERSION}",
            f"{MODULE}@v{VERSION}"]


def install() -> int:
    """Build the binary into INSTALL_DIR unless one of VERSION is there (a build is
    minutes of CPU: on a shared machine, run it under the benchmark lock,
    `flock /tmp/tickwire-bench.lock ...`)."""
    built = INSTALL_DIR / "centrifugo"
    if built.is_file() and f"v{VERSION}" in version(built).split():
        print(version(built))
        return 0
    go = shutil.which("go")
    if go is None:
        print("bench.centrifugo: no `go` on PATH", file=sys.stderr)
        return 1
    INSTALL_DIR.mkdir(parents=True, exist_ok=True)
    command = install_command()
    print(f"GOBIN={INSTALL_DIR} {shlex.join(command)}", flush=True)
    done = subprocess.run(command, env={**os.environ, "GOBIN": str(INSTALL_DIR)})
    if done.returncode == 0:
        print(version(INSTALL_DIR / "centrifugo"))
    return done.returncode


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.centrifugo",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--install", action="store_true",
                   help=f"build Centrifugo {VERSION} into {INSTALL_DIR} (needs Go)")
    if p.parse_args(argv).install:
        return install()
    binary, where = find_binary()
    if binary is None:
        print(f"no Centrifugo: {where}")
        return 1
    print(f"{binary} (from {where}): {version(binary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
