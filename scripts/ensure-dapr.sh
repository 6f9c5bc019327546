#!/usr/bin/env bash
# Provides the pinned Dapr runtime (daprd) and CLI (dapr) and prints the directory that
# holds both (a "Dapr runtime path": the binaries live in <dir>/.dapr/bin, the layout the
# CLI expects with DAPR_RUNTIME_PATH=<dir>).
#
# Usage: scripts/ensure-dapr.sh [project|stock]   (default: $TASK_PLATFORM_DAPRD, else project)
#   project  daprd built from the pinned Dapr release plus the fixes the project carries
#            (third_party/dapr/*.patch, see third_party/dapr/README.md): what every
#            environment runs. Cached under a key made of the version and the patches.
#   stock    daprd of the pinned release as Dapr ships it: the strict expected-failure
#            tests run on it, and TASK_PLATFORM_DAPRD=stock switches everything back to it.
#            A user's own `dapr init --slim` daprd (~/.dapr/bin) is used when it is the
#            pinned version and has the CLI beside it.
#
# A build is from Go modules: daprd's module carries `replace` directives, so `go install
# ...@vX` is refused; the downloaded module is built as the main module instead, with the
# `allcomponents` tag (without a components tag daprd panics at start, and sqlite name
# resolution only exists in that flavour). The stock build comes first; the project's
# then reuses Go's build cache and only recompiles what the patches touch.
#
# Everything but the path goes to stderr, so callers can do: dir=$(scripts/ensure-dapr.sh)
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../versions.env
source "$repo_root/versions.env"
source "$repo_root/scripts/go-modules.sh"

flavour=${1:-${TASK_PLATFORM_DAPRD:-project}}
runtime_version=$DAPR_RUNTIME_VERSION
cli_version=$DAPR_CLI_VERSION
cache_root=${TASK_PLATFORM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/task-platform}
patches=("$repo_root"/third_party/dapr/*.patch)
patch_key=$(cat "${patches[@]}" | sha256sum | cut -c1-12)
stock_dir=$cache_root/dapr-$runtime_version-cli-$cli_version
project_dir=$cache_root/dapr-$runtime_version-patched-$patch_key-cli-$cli_version

log() { printf 'ensure-dapr: %s\n' "$*" >&2; }

reports_version() { # <binary> <version>
  [[ -x $1 ]] && "$1" --version 2>/dev/null | grep -qx "$2"
}

cli_reports_version() { # <binary> <version>
  [[ -x $1 ]] && "$1" version 2>/dev/null | grep -q "CLI version: $2"
}

complete() { # <runtime dir>: daprd and the CLI, both at their pinned versions
  reports_version "$1/.dapr/bin/daprd" "$runtime_version" && cli_reports_version "$1/.dapr/bin/dapr" "$cli_version"
}

case $flavour in
  project) wanted=$project_dir ;;
  stock)
    wanted=$stock_dir
    # A user's own `dapr init --slim` installation, when it is the pinned runtime.
    if reports_version "$HOME/.dapr/bin/daprd" "$runtime_version" && [[ -x $HOME/.dapr/bin/dapr ]]; then
      log "using stock daprd $runtime_version from $HOME/.dapr/bin"
      printf '%s\n' "$HOME"
      exit 0
    fi
    ;;
  *) log "unknown daprd flavour '$flavour' (project or stock)"; exit 2 ;;
esac
if complete "$wanted"; then
  printf '%s\n' "$wanted"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  log "Go is needed to build daprd $runtime_version (none found on PATH)."
  log "Install Go 1.26 or newer (https://go.dev/dl/), then run this again."
  exit 1
fi

# One build at a time (make test, make up and the image builds may all ask at once): a
# second caller waits here, then finds the first one's binaries.
mkdir -p "$cache_root"
exec 9>"$cache_root/.build-dapr-$runtime_version.lock"
flock 9
if complete "$wanted"; then
  printf '%s\n' "$wanted"
  exit 0
fi
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
start=$(date +%s)

build_daprd() { # <output binary> [patch ...]
  log "building daprd $runtime_version${2:+ with $(basename -a "${@:2}" | tr '\n' ' ')}from Go modules" \
    "(the first build takes about 10-20 minutes on 2 cores)"
  rm -rf "$work/dapr"
  copy_module "github.com/dapr/dapr@v$runtime_version" "$work/dapr"
  local patch
  for patch in "${@:2}"; do
    git -C "$work/dapr" apply -p1 "$patch" || { log "$patch does not apply to dapr $runtime_version"; return 1; }
  done
  mkdir -p "$(dirname "$1")"
  (
    cd "$work/dapr"
    CGO_ENABLED=0 go build -trimpath -tags allcomponents \
      -ldflags "-s -w -X github.com/dapr/dapr/pkg/buildinfo.version=$runtime_version" \
      -o "$1.tmp" ./cmd/daprd
  )
  mv "$1.tmp" "$1"
}

# The stock runtime first, also when only the project's is asked for: its CLI is shared,
# and its build fills Go's cache for the patched one.
if ! reports_version "$stock_dir/.dapr/bin/daprd" "$runtime_version"; then
  build_daprd "$stock_dir/.dapr/bin/daprd"
fi
if ! cli_reports_version "$stock_dir/.dapr/bin/dapr" "$cli_version"; then
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
      -o "$stock_dir/.dapr/bin/dapr.tmp" .
  )
  mv "$stock_dir/.dapr/bin/dapr.tmp" "$stock_dir/.dapr/bin/dapr"
fi
if [[ $flavour == project ]] && ! complete "$project_dir"; then
  build_daprd "$project_dir/.dapr/bin/daprd" "${patches[@]}"
  cp "$stock_dir/.dapr/bin/dapr" "$project_dir/.dapr/bin/dapr"
  # Builds of earlier versions of the patches: 300 MB each, never used again.
  for old in "$cache_root/dapr-$runtime_version-patched-"*; do
    [[ $old == "$project_dir" ]] || rm -rf "$old"
  done
fi

log "built into $wanted in $(($(date +%s) - start)) s ($(du -sh "$wanted" | cut -f1))"
printf '%s\n' "$wanted"
