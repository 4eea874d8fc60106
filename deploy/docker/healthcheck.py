"""Container HEALTHCHECK for the tickwire images: exit 0 when the service answers 200 on
/healthz, else 1 with one line on stderr.

    python /app/healthcheck.py TICKWIRE_EDGE 8081

reads the service's own settings (TICKWIRE_EDGE_HOST, TICKWIRE_EDGE_PORT; the second
argument is the default port), so a port changed at run time is still the one checked.
Standard library only: the runtime images carry no curl or wget.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 3.0


def healthz_url(prefix: str, default_port: str) -> str:
    host = os.environ.get(f"{prefix}_HOST", "").strip()
    port = os.environ.get(f"{prefix}_PORT", "").strip() or default_port
    if host in ("", "0.0.0.0", "::", "[::]"):  # listening on all addresses: use loopback
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):  # an IPv6 literal
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: healthcheck.py <SETTINGS_PREFIX> <DEFAULT_PORT>", file=sys.stderr)
        return 2
    url = healthz_url(argv[1], argv[2])
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            if response.status == 200:
                return 0
            print(f"healthcheck: {url} answered {response.status}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
