#!/usr/bin/env bash
# Installs what tickwire needs on a fresh Debian machine, skipping what is there:
# system packages (when root), uv, the Python workspace, and the Kafka jars (cached).
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
for pair in redis-server:redis-server haproxy:haproxy java:openjdk-17-jre-headless mvn:maven; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || need+=("${pair##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
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
