#!/usr/bin/env bash
# Provides the pinned Dapr runtime (daprd) and CLI (dapr) and prints the directory that
# holds both (a "Dapr runtime path": the binaries live in <dir>/.dapr/bin, the layout the
# CLI expects with DAPR_RUNTIME_PATH=<dir>).
#
# Order of preference:
#   1. ~/.dapr/bin/daprd when it reports the pinned version (what `dapr init --slim`
#      leaves on a laptop) and a dapr CLI sits beside it;
#   2. a previous build in the cache (outside the repo);
#   3. a build from Go modules into that cache. daprd's module carries `replace`
#      directives, so `go install ...@vX` is refused: we build the downloaded module as the
#      main module instead, with the `allcomponents` tag (without a components tag daprd
#      panics at start, and sqlite name resolution only exists in that flavour).
#
# Everything but the path goes to stderr, so callers can do: dir=$(scripts/ensure-dapr.sh)
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../versions.env
source "$repo_root/versions.env"
source "$repo_root/scripts/go-modules.sh"

runtime_version=$DAPR_RUNTIME_VERSION
cli_version=$DAPR_CLI_VERSION
cache_root=${TASK_PLATFORM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/task-platform}
runtime_dir=$cache_root/dapr-$runtime_version-cli-$cli_version
bin_dir=$runtime_dir/.dapr/bin

log() { printf 'ensure-dapr: %s\n' "$*" >&2; }

reports_version() { # <binary> <version>
  [[ -x $1 ]] && "$1" --version 2>/dev/null | grep -qx "$2"
}

cli_reports_version() { # <binary> <version>
  [[ -x $1 ]] && "$1" version 2>/dev/null | grep -q "CLI version: $2"
}

# 1. A user's own `dapr init --slim` installation, when it is the pinned runtime.
home_dapr=$HOME/.dapr
if reports_version "$home_dapr/bin/daprd" "$runtime_version" && [[ -x $home_dapr/bin/dapr ]]; then
  log "using daprd $runtime_version from $home_dapr/bin"
  printf '%s\n' "$HOME"
  exit 0
fi

# 2. The cache.
if reports_version "$bin_dir/daprd" "$runtime_version" && cli_reports_version "$bin_dir/dapr" "$cli_version"; then
  printf '%s\n' "$runtime_dir"
  exit 0
fi

# 3. Build.
if ! command -v go >/dev/null 2>&1; then
  log "Go is needed to build daprd $runtime_version (none found on PATH)."
  log "Install Go 1.26 or newer (https://go.dev/dl/), or install Dapr $runtime_version with"
  log "'dapr init --slim --runtime-version $runtime_version', then run this again."
  exit 1
fi

mkdir -p "$bin_dir"
# One build at a time (make test, make up and the image builds may all ask at once): a
# second caller waits here, then finds the first one's binaries.
exec 9>"$runtime_dir/.build.lock"
flock 9
if reports_version "$bin_dir/daprd" "$runtime_version" && cli_reports_version "$bin_dir/dapr" "$cli_version"; then
  printf '%s\n' "$runtime_dir"
  exit 0
fi
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT


start=$(date +%s)
if ! reports_version "$bin_dir/daprd" "$runtime_version"; then
  log "building daprd $runtime_version from Go modules (first time only: about 10-20 minutes on 2 cores)"
  copy_module "github.com/dapr/dapr@v$runtime_version" "$work/dapr"
  (
    cd "$work/dapr"
    CGO_ENABLED=0 go build -trimpath -tags allcomponents \
      -ldflags "-s -w -X github.com/dapr/dapr/pkg/buildinfo.version=$runtime_version" \
      -o "$bin_dir/daprd.tmp" ./cmd/daprd
  )
  mv "$bin_dir/daprd.tmp" "$bin_dir/daprd"
fi

if ! cli_reports_version "$bin_dir/dapr" "$cli_version"; then
  log "building the dapr CLI $cli_version from Go modules"
  copy_module "github.com/dapr/cli@v$cli_version" "$work/cli"
  (
    cd "$work/cli"
    # The CLI's go.mod asks for components-contrib v1.16.3, which the Go module proxy
    # does not serve; v1.16.1 is API-compatible for the few packages the CLI uses (it
    # only validates component files with them).
    go mod edit -replace "github.com/dapr/components-contrib=github.com/dapr/components-contrib@v$DAPR_CLI_CONTRIB_VERSION"
    CGO_ENABLED=0 go build -mod=mod -trimpath \
      -ldflags "-s -w -X main.version=$cli_version -X main.apiVersion=1.0" \
      -o "$bin_dir/dapr.tmp" .
  )
  mv "$bin_dir/dapr.tmp" "$bin_dir/dapr"
fi

log "built into $bin_dir in $(($(date +%s) - start)) s ($(du -sh "$runtime_dir" | cut -f1))"
printf '%s\n' "$runtime_dir"
