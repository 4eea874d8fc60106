#!/usr/bin/env bash
# Install the helm CLI used by tests/deploy (lint + template of the chart in this folder).
#
# helm is built from source with `go install` through the Go module proxy and kept in a
# cache folder outside the clone, so it survives fresh clones and runs only once per machine.
# Prints the path of the helm binary on stdout (everything else goes to stderr).
#
#   deploy/k8s/install-helm.sh            # install if missing, print the path
#   TICKWIRE_HELM_VERSION=v3.21.4 ...     # another v3 version
#   TICKWIRE_HELM_DIR=/opt/helm ...       # another cache folder (default ~/.cache/tickwire/helm)
#
# The tests find helm through $TICKWIRE_HELM, then this cache folder, then $PATH.
set -euo pipefail

# v3.21.x needs Go >= 1.26 (its go.mod says `go 1.26.0`); older Go needs an older v3 line.
HELM_VERSION="${TICKWIRE_HELM_VERSION:-v3.21.4}"
CACHE_ROOT="${TICKWIRE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tickwire}"
HELM_DIR="${TICKWIRE_HELM_DIR:-$CACHE_ROOT/helm}"
HELM_BIN="$HELM_DIR/helm"

log() { echo "install-helm: $*" >&2; }

installed_version() {
    "$HELM_BIN" version --template '{{.Version}}' 2>/dev/null || true
}

if [[ -x "$HELM_BIN" && "$(installed_version)" == "$HELM_VERSION" ]]; then
    echo "$HELM_BIN"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    for candidate in /usr/local/go/bin/go /usr/lib/go/bin/go; do
        if [[ -x "$candidate" ]]; then PATH="$(dirname "$candidate"):$PATH"; break; fi
    done
fi
if ! command -v go >/dev/null 2>&1; then
    log "go is not installed: helm $HELM_VERSION is built with 'go install' (needs Go >= 1.26)"
    exit 1
fi

export GOTOOLCHAIN=local   # never fetch another Go toolchain; a too-old Go fails clearly
log "building helm $HELM_VERSION with $(go version | cut -d' ' -f3) into $HELM_DIR (once) ..."
mkdir -p "$HELM_DIR"

# Stamp what helm's own Makefile stamps: its version (so `helm version` and the check above
# report it) and the Kubernetes version of its client-go, the default for capabilities and
# deprecation checks (unstamped, helm would assume Kubernetes 1.20).
gomod="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
client_go="$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$gomod")"   # v0.MINOR.PATCH
k8s_minor="$(echo "$client_go" | cut -d. -f2)"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
if [[ "$k8s_minor" =~ ^[0-9]+$ ]]; then
    for pkg in pkg/lint/rules pkg/chartutil; do
        ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$k8s_minor"
    done
fi

# CGO_ENABLED=0: a static binary, no C toolchain needed.
GOBIN="$HELM_DIR" CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2

if [[ "$(installed_version)" != "$HELM_VERSION" ]]; then
    log "built $HELM_BIN but it reports '$(installed_version)', expected $HELM_VERSION"
    exit 1
fi
log "installed $("$HELM_BIN" version --short)"
echo "$HELM_BIN"
