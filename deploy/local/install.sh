#!/usr/bin/env bash
# Installs what tickwire needs on a fresh Debian machine, skipping what is there:
# system packages (when root), uv, the Python workspace, the Kafka jars (cached) and the
# dashboard bundle. `install.sh --test` adds what only the tests need: Chromium for the
# browser test, Debian's prometheus (promtool for the alert-rule tests, and the server the
# dashboard-query test starts on a free port), helm for the chart checks and Centrifugo for
# the storm comparator's tests (each built once with Go into ~/.cache/tickwire).
set -euo pipefail
cd "$(dirname "$0")/../.."

tools="redis-server:redis-server haproxy:haproxy java:openjdk-17-jre-headless mvn:maven npm:npm"
[ "${1:-}" = --test ] && tools="$tools chromium:chromium promtool:prometheus"
need=()
for pair in $tools; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || need+=("${pair##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    # The package enables a system Prometheus on :9090; the tests start their own.
    if [[ " ${need[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1; then
      systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
  else
    echo "missing: ${need[*]} — run: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
fi

if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
  export PATH="$HOME/.local/bin:$PATH"
fi
uv sync --frozen --quiet
uv run --frozen python -c "from tickwire.localstack import ensure_kafka_jars; ensure_kafka_jars()"
libs/web-client/build.sh >/dev/null
if [ "${1:-}" = --test ]; then
  deploy/k8s/install-helm.sh >/dev/null
  uv run --frozen python -m bench.centrifugo --install >/dev/null
fi
