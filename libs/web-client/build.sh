#!/usr/bin/env bash
# Install the web client's locked dependencies and build the dashboard the edges serve
# (services/ws-edge/src/tickwire/edge/static/dashboard/). The npm cache lives outside
# the clone: $NPM_CONFIG_CACHE if set, else ~/.cache/tickwire/npm.
#   libs/web-client/build.sh           install if package-lock.json changed, then build
#   libs/web-client/build.sh --test    also type-check, run the Vitest suite and build dist/
set -euo pipefail
cd "$(dirname "$0")"

export NPM_CONFIG_CACHE="${NPM_CONFIG_CACHE:-$HOME/.cache/tickwire/npm}"
export NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false

command -v npm >/dev/null || { echo "build.sh: npm not found (apt-get install -y nodejs npm)" >&2; exit 1; }

stamp=node_modules/.tickwire-lock
if [[ ! -f $stamp ]] || ! cmp -s package-lock.json "$stamp"; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi

if [[ ${1:-} == --test ]]; then
  npx --no-install tsc --noEmit
  npx --no-install vitest run
  npm run --silent build:lib   # the installable package (dist/): what `npm pack` ships
fi
node scripts/build-dashboard.mjs
