#!/usr/bin/env bash
# Provides what the deployment checks need, built or fetched once into a cache outside
# the repo, and prints shell assignments for them:
#   TILT=...        a real tilt binary, built from its Go module
#   KUSTOMIZE=...   a real kustomize binary, built from its Go module
#   DAPR_CRDS=...   the CRDs of the pinned Dapr release (from the dapr Go module)
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_root/versions.env"
source "$repo_root/scripts/go-modules.sh"
cache_root=${TASK_PLATFORM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/task-platform}
log() { printf 'ensure-tools: %s\n' "$*" >&2; }

command -v go >/dev/null 2>&1 || { log "MISSING: Go 1.26+, to build tilt and kustomize"; exit 1; }

# One build at a time: a second caller waits here, then finds the first one's binaries.
mkdir -p "$cache_root"
exec 9>"$cache_root/.ensure-tools.lock"
flock 9

# "-r2": built with the stub web page below (the first builds had none, and `tilt up`
# refused to start without one).
tilt_bin=$cache_root/tilt-$TILT_VERSION-r2/tilt
if [[ ! -x $tilt_bin ]]; then
  command -v cc >/dev/null 2>&1 || { log "MISSING: a C compiler (apt-get install gcc), to build tilt"; exit 1; }
  # tilt's module has replace directives (so `go install` refuses it) and a vendor
  # directory holding only modules.txt: build it as the main module, from modules. Its
  # web UI (a JavaScript build) is not in the module, and `tilt up` will not start
  # without one: a one-page stand-in says where to look instead. Everything else
  # (`tilt up` headless, get, wait, logs, down, the Tiltfile API) is the real tilt.
  log "building tilt $TILT_VERSION from Go modules (first time only: a few minutes)"
  work=$(mktemp -d)
  copy_module "github.com/tilt-dev/tilt@v$TILT_VERSION" "$work/tilt"
  cat > "$work/tilt/pkg/assets/build/index.html" <<'HTML'
<!doctype html><title>Tilt</title><p>This tilt was built from its Go module, which does not
carry the web UI. Follow the resources with <code>tilt get uiresources</code> and
<code>tilt logs</code>.</p>
HTML
  mkdir -p "$(dirname "$tilt_bin")"
  # cgo: tilt parses Python with tree-sitter (a C library), so it needs a C compiler.
  (cd "$work/tilt" && CGO_ENABLED=1 go build -mod=mod -trimpath \
    -ldflags "-s -w -X main.version=$TILT_VERSION" -o "$tilt_bin.tmp" ./cmd/tilt)
  mv "$tilt_bin.tmp" "$tilt_bin"
  rm -rf "$work"
fi

kustomize_bin=$cache_root/kustomize-$KUSTOMIZE_VERSION/kustomize
if [[ ! -x $kustomize_bin ]]; then
  log "building kustomize $KUSTOMIZE_VERSION from Go modules"
  GOBIN=$(dirname "$kustomize_bin") CGO_ENABLED=0 \
    go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kustomize/kustomize/v5@v$KUSTOMIZE_VERSION"
fi

# Read in place from the module cache (never committed to the repo).
crds=$(module_dir "github.com/dapr/dapr@v$DAPR_RUNTIME_VERSION")/charts/dapr/crds

printf 'TILT=%q\nKUSTOMIZE=%q\nDAPR_CRDS=%q\n' "$tilt_bin" "$kustomize_bin" "$crds"
