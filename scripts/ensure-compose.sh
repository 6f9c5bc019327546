#!/usr/bin/env bash
# Makes `docker compose` (v2) work with Debian's docker client and prints shell assignments:
#   DOCKER_CONFIG=...   a docker config dir whose cli-plugins/ holds docker-compose (only
#                       printed when the client has no compose plugin of its own)
#   COMPOSE_BIN=...     the docker-compose binary in use (empty when the client's own is used)
#
# When the client already has a compose v2 plugin (a developer's Docker install), that one
# is used and nothing is built. Otherwise compose $COMPOSE_VERSION (versions.env) is built
# once from its Go module into the cache, keyed by version (`go install` is refused: the
# module's go.mod has exclude directives, so a copy of the module is built as the main
# module instead; about 4 minutes on 2 cores).
# Leaves behind: <cache>/compose-<version>/docker-compose and <cache>/docker/config/
# (cli-plugins/docker-compose -> that binary; config.json -> the user's, when one exists).
# Logs go to stderr; use as: eval "$(scripts/ensure-compose.sh)"
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_root/versions.env"
source "$repo_root/scripts/go-modules.sh"
cache_root=${TASK_PLATFORM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/task-platform}
log() { printf 'ensure-compose: %s\n' "$*" >&2; }

docker_client=${DOCKER:-/usr/bin/docker}
if [[ -x $docker_client ]] && "$docker_client" compose version >/dev/null 2>&1; then
  log "using the docker client's own compose plugin ($("$docker_client" compose version --short 2>/dev/null || echo '?'))"
  printf 'COMPOSE_BIN=\n'
  exit 0
fi

compose_bin=$cache_root/compose-$COMPOSE_VERSION/docker-compose
mkdir -p "$(dirname "$compose_bin")"
exec 9>"$(dirname "$compose_bin")/.lock"
flock 9 # one build at a time (make e2e-compose and make e2e-k8s may start together)
if [[ ! -x $compose_bin ]]; then
  command -v go >/dev/null 2>&1 || { log "MISSING: Go 1.26+, to build docker compose $COMPOSE_VERSION"; exit 1; }
  log "building docker compose $COMPOSE_VERSION from its Go module (first time only: about 4 minutes)"
  start=$(date +%s)
  work=$(mktemp -d)
  trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
  copy_module "github.com/docker/compose/v2@v$COMPOSE_VERSION" "$work/compose"
  (cd "$work/compose" && CGO_ENABLED=0 nice go build -trimpath \
    -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=v$COMPOSE_VERSION" \
    -o "$compose_bin.tmp" ./cmd)
  mv "$compose_bin.tmp" "$compose_bin"
  log "built $compose_bin in $(($(date +%s) - start)) s"
fi

# A docker config dir of our own, so the plugin is found without touching ~/.docker; the
# user's config.json (registry logins) is linked in so pulls keep their credentials.
config_dir=$cache_root/docker/config
mkdir -p "$config_dir/cli-plugins"
ln -sfn "$compose_bin" "$config_dir/cli-plugins/docker-compose"
user_config=${DOCKER_CONFIG:-$HOME/.docker}/config.json
if [[ -f $user_config && $user_config != "$config_dir/config.json" ]]; then
  ln -sfn "$user_config" "$config_dir/config.json"
fi
printf 'DOCKER_CONFIG=%q\nCOMPOSE_BIN=%q\n' "$config_dir" "$compose_bin"
