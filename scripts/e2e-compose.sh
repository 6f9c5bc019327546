#!/usr/bin/env bash
# `make e2e-compose`: the real docker-compose.yml, built and run in a real Docker engine,
# tested from outside; with BACKEND=postgres-kafka (default redis) together with
# docker-compose.postgres-kafka.yml. The sidecars run the project's daprd image, built
# from third_party/dapr/Dockerfile by compose; DAPRD=stock (or TASK_PLATFORM_DAPRD=stock)
# adds docker-compose.stock-daprd.yml, for the official daprio/daprd.
# Steps: scripts/docker-up.sh (an engine: the user's, or a project-owned dockerd) ->
# docker compose (scripts/ensure-compose.sh, via docker-up) -> base images
# (scripts/standin-images.sh: real ones, or labelled local stand-ins) -> `docker compose
# up -d --build --wait` -> a check that the sidecars run the daprd asked for, and the
# integration tests in external-stack mode (a create reaching notification-service among
# them) -> on exit, also on failure: the compose logs when something
# failed, `docker compose down -v`, and scripts/docker-down.sh (unless that dockerd was
# already running before this script).
# Leaves behind: nothing running; the images stay in the cache's docker data root, so the
# next run is warm. Timings are printed at the end and appended to
# <cache>/docker/e2e-timings.log.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
cache_root=${TASK_PLATFORM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/task-platform}
project=${E2E_COMPOSE_PROJECT:-task-platform-e2e}
export BACKEND=${BACKEND:-redis}
case $BACKEND in
  redis) compose_files=(-f "$repo_root/docker-compose.yml") ;;
  postgres-kafka)
    compose_files=(-f "$repo_root/docker-compose.yml" -f "$repo_root/docker-compose.postgres-kafka.yml") ;;
  *) printf 'e2e-compose: BACKEND must be redis or postgres-kafka, not %s\n' "$BACKEND" >&2; exit 2 ;;
esac
export DAPRD=${DAPRD:-${TASK_PLATFORM_DAPRD:-project}} # read by standin-images.sh too
case $DAPRD in
  project) ;;
  stock) compose_files+=(-f "$repo_root/docker-compose.stock-daprd.yml") ;;
  *) printf 'e2e-compose: DAPRD must be project or stock, not %s\n' "$DAPRD" >&2; exit 2 ;;
esac
api_key=dev-task-api-key # components/secrets.json
log() { printf 'e2e-compose: %s\n' "$*" >&2; }

start=$(date +%s)
last=$start
timings=()
phase_done() { local now; now=$(date +%s); timings+=("$1 $((now - last))s"); last=$now; }

kind=cold
keep_docker=0
pid=$(cat "$cache_root/docker/run/dockerd.pid" 2>/dev/null || true)
[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && keep_docker=1

work=$(mktemp -d)
compose_up=0
compose() { "$DOCKER" compose -p "$project" "${compose_files[@]}" "${env_args[@]}" "$@"; }

finish() {
  local rc=$?
  set +e
  if ((compose_up)); then
    if ((rc != 0)); then
      log "FAILED (exit $rc): the stack's logs follow"
      compose ps -a >&2
      compose logs --no-color --tail 150 >&2
    fi
    log "docker compose down -v"
    compose down -v --remove-orphans >&2 2>&1
  fi
  if [[ -n ${DOCKER:-} ]]; then
    log "images:"
    "$DOCKER" images --format '  {{.Repository}}:{{.Tag}}  {{.Size}}' >&2
  fi
  if ((keep_docker)); then
    log "leaving the dockerd that was running before this script"
  else
    # A host left changed fails the run, as a failed test does.
    scripts/docker-down.sh || rc=1
  fi
  rm -rf "$work"
  phase_done teardown
  local total=$(($(date +%s) - start)) result=passed
  ((rc == 0)) || result="FAILED (exit $rc)"
  log "$result, $kind run ($BACKEND, $DAPRD daprd): ${total}s total; ${timings[*]}"
  log "cache: $(du -sh "$cache_root/docker" 2>/dev/null | cut -f1) in $cache_root/docker"
  printf '%s %s %s run %ss (%s, %s daprd): %s\n' "$(date -u +%FT%TZ)" "$result" "$kind" "$total" "$BACKEND" \
    "$DAPRD" "${timings[*]}" \
    >>"$cache_root/docker/e2e-timings.log" 2>/dev/null
  exit "$rc"
}
trap finish EXIT

eval "$(scripts/docker-up.sh)"
# warm: the engine still holds the images of an earlier run (base images and build cache)
"$DOCKER" image inspect task-platform/task-api:dev >/dev/null 2>&1 && kind=warm
phase_done docker-up+compose-cli
scripts/standin-images.sh
phase_done base-images

# compose requires the tokens from .env; a user's own .env is used as it is.
env_args=()
if [[ ! -f .env ]]; then
  cp .env.example "$work/e2e.env"
  env_args=(--env-file "$work/e2e.env")
  log "no .env: using a copy of .env.example"
fi

source scripts/bootstrap.sh || exit 1 # UV, for the tests
phase_done bootstrap

# The images this run replaces are removed once nothing names them (no pile of <none>).
old_images=$("$DOCKER" images -q 'task-platform/*')
compose_up=1
log "docker compose -p $project (backend $BACKEND, $DAPRD daprd) up -d --build --wait"
COMPOSE_BAKE=false compose up -d --build --wait --wait-timeout 300 >&2
for id in $old_images; do
  if [[ $("$DOCKER" image inspect -f '{{len .RepoTags}}' "$id" 2>/dev/null) == 0 ]]; then
    "$DOCKER" rmi "$id" >/dev/null 2>&1 || true
  fi
done
phase_done compose-up

# The sidecars run the daprd asked for: the project's carries the patched relay's warning,
# which logs the discarded message's id (third_party/dapr); stock's has no such format.
for sidecar in task-api-dapr notification-service-dapr; do
  container=$(compose ps -q "$sidecar")
  image=$("$DOCKER" inspect -f '{{.Config.Image}}' "$container")
  "$DOCKER" cp "$container:/daprd" "$work/daprd"
  patched=stock
  grep -aq 'discarding message %s' "$work/daprd" && patched=project
  [[ $patched == "$DAPRD" ]] || { log "$sidecar runs $image, a $patched daprd, not $DAPRD"; exit 1; }
  log "$sidecar runs $image: $patched daprd, sha256 $(sha256sum "$work/daprd" | cut -c1-12)"
  rm -f "$work/daprd"
done
phase_done sidecar-check

log "integration tests against the compose stack"
# How the tests read an app's log and run a program beside its sidecar ({app} = app-id,
# which is also the compose service name); see tests/harness/deployed.py.
compose_cmd=$(printf '%q ' "$DOCKER" compose -p "$project" "${compose_files[@]}" "${env_args[@]}")
TASK_PLATFORM_BACKEND=$BACKEND \
  TASK_PLATFORM_STACK=external TASK_API_URL=http://127.0.0.1:8000 NOTIFICATION_URL=http://127.0.0.1:8001 \
  TASK_API_KEY=$api_key TASK_PLATFORM_APP_LOGS="$compose_cmd logs --no-color {app}" \
  TASK_PLATFORM_APP_EXEC="$(printf '%q' "$DOCKER") exec -i $project-{app}-1" \
  TRACES_URL=http://127.0.0.1:16686 \
  "$UV" run --frozen pytest -p no:cacheprovider \
  tests/integration/test_task_api_contract.py tests/integration/test_event_flows.py \
  tests/integration/test_tracing.py >&2
phase_done tests
