#!/usr/bin/env bash
# Provides the pinned Jaeger v2 binary (the trace backend) and prints its path:
# <cache>/jaeger-<JAEGER_VERSION>/jaeger. `make up` and the test harness run it
# (scripts/bootstrap.sh exports it), and scripts/standin-images.sh puts it into the local stand-in for the jaegertracing/jaeger
# image of docker-compose.yml and k8s/ when the registry cannot be reached.
#
# Jaeger's Go module keeps v1 tags: JAEGER_VERSION is the module tag of the release whose
# image tag is JAEGER_IMAGE_VERSION (versions.env). The module carries `replace`
# directives, so `go install` refuses it: a copy is built as the main module, once, into
# the cache (about 5 minutes on 2 cores). Built from the module, it serves Jaeger's HTTP
# API but only a placeholder page for the UI (the UI's JavaScript is not in the module).
#
# Leaves behind: the binary in the cache, nothing else. Everything but the path goes to
# stderr, so callers can do: jaeger=$(scripts/ensure-jaeger.sh)
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_root/versions.env"
source "$repo_root/scripts/go-modules.sh"
cache_root=${TASK_PLATFORM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/task-platform}
jaeger_dir=$cache_root/jaeger-$JAEGER_VERSION
jaeger_bin=$jaeger_dir/jaeger
log() { printf 'ensure-jaeger: %s\n' "$*" >&2; }

# `jaeger version` prints {"gitCommit":"","gitVersion":"v1.76.0",...}: the build below
# stamps the module tag in, so a binary of another version is rebuilt.
reports_version() {
  [[ -x $jaeger_bin ]] && "$jaeger_bin" version 2>/dev/null | grep -qF "\"gitVersion\":\"v$JAEGER_VERSION\""
}

if reports_version; then
  printf '%s\n' "$jaeger_bin"
  exit 0
fi

command -v go >/dev/null 2>&1 || { log "MISSING: Go 1.24.6+ (https://go.dev/dl/; what jaeger's go.mod asks), to build jaeger $JAEGER_VERSION"; exit 1; }

# One build at a time (the compose and cluster runs may both ask): a second caller waits
# here, then finds the first one's binary.
mkdir -p "$jaeger_dir"
exec 9>"$jaeger_dir/.lock"
flock 9
if reports_version; then
  printf '%s\n' "$jaeger_bin"
  exit 0
fi

work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
start=$(date +%s)
log "building jaeger $JAEGER_VERSION (image $JAEGER_IMAGE_VERSION) from Go modules (first time only: about 5 minutes)"
copy_module "github.com/jaegertracing/jaeger@v$JAEGER_VERSION" "$work/jaeger"
(
  cd "$work/jaeger"
  CGO_ENABLED=0 go build -mod=mod -trimpath \
    -ldflags "-s -w -X github.com/jaegertracing/jaeger/internal/version.latestVersion=v$JAEGER_VERSION" \
    -o "$jaeger_bin.tmp" ./cmd/jaeger
)
mv "$jaeger_bin.tmp" "$jaeger_bin"
log "built $jaeger_bin in $(($(date +%s) - start)) s"
printf '%s\n' "$jaeger_bin"
