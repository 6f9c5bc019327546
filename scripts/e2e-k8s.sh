#!/usr/bin/env bash
# `make e2e-k8s`: the Kubernetes dev loop for real. A Docker engine (scripts/docker-up.sh)
# and the local cluster (scripts/cluster-up.sh), then `tilt up` of the project's own
# Tiltfile, headless in the background as a developer runs it, in a copy of the
# repository (the live-update test edits files there, never here). Once every resource
# is ready: the contract and event-flow tests through Tilt's port-forwards (8000/8001),
# then tests/e2e (pods 2/2, pods dying under load, kubectl logs, live update, rebuild).
# Then tilt down, and the cluster and the engine stop again (KEEP_CLUSTER=1 keeps both).
# BACKEND=postgres-kafka (default redis) deploys that profile (tilt up -- --backend=...).
# Leaves behind: the build caches and images in the cache directory, nothing running.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
start=$SECONDS
export BACKEND=${BACKEND:-redis} # read by standin-images.sh and cluster-up.sh too
source scripts/bootstrap.sh
tools=$(scripts/ensure-tools.sh)
eval "$tools"
cluster_tools=$(scripts/ensure-cluster-tools.sh)
eval "$cluster_tools"
say() { printf 'e2e-k8s: [%4d s] %s\n' "$((SECONDS - start))" "$*" >&2; }

work=$(mktemp -d)
tilt_pid=
finish() {
  local status=$?
  trap - EXIT
  if [[ -n $tilt_pid ]]; then
    ((status == 0)) || tail -n 60 "$work/tilt.log" >&2 || true
    (cd "$work/repo" && "$TILT" down --file Tiltfile -- --backend="$BACKEND" >/dev/null 2>&1) || true
    kill "$tilt_pid" 2>/dev/null || true
    wait "$tilt_pid" 2>/dev/null || true
  fi
  if [[ -z ${KEEP_CLUSTER:-} ]]; then
    scripts/cluster-down.sh >&2 || status=1
    scripts/docker-down.sh >&2 || status=1
  fi
  rm -rf "$work"
  say "done (exit $status)"
  exit "$status"
}
trap finish EXIT

engine=$(scripts/docker-up.sh)
eval "$engine"
export DOCKER_HOST DOCKER_BUILDKIT DOCKER_CONFIG
scripts/standin-images.sh >&2
say "Docker engine up"
cluster=$(scripts/cluster-up.sh)
eval "$cluster"
export KUBECONFIG
say "cluster up: $("$K8S_BIN/kubectl" config current-context)"

# Tilt calls kubectl and kustomize by name (the Tiltfile's Dapr check, kustomize()):
# this run's own, ahead of whatever else the PATH holds.
bin_dir=$work/bin
mkdir -p "$bin_dir"
ln -s "$K8S_BIN/kubectl" "$bin_dir/kubectl"
ln -s "$KUSTOMIZE" "$bin_dir/kustomize"
ln -s "$DOCKER" "$bin_dir/docker"
export PATH=$bin_dir:$PATH

# What git would commit now (tracked and new files, not ignored ones), edits included.
mkdir -p "$work/repo"
git ls-files -z --cached --others --exclude-standard |
  tar --null --ignore-failed-read -T - -cf - | tar -xf - -C "$work/repo"
tilt_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export TILT_PORT=$tilt_port TILT_HOST=127.0.0.1
(cd "$work/repo" && exec "$TILT" up --stream --port "$tilt_port" --host 127.0.0.1 -- --backend="$BACKEND") \
  > "$work/tilt.log" 2>&1 &
tilt_pid=$!
say "tilt up, backend $BACKEND (log: $work/tilt.log)"
for _ in $(seq 120); do
  "$TILT" get session --port "$tilt_port" >/dev/null 2>&1 && break
  kill -0 "$tilt_pid" 2>/dev/null || { say "tilt up exited"; exit 1; }
  sleep 1
done
# Polled rather than `tilt wait --all`, which was seen to hang on a resource that had
# long been ready.
not_ready() {
  "$TILT" get uiresources --port "$tilt_port" -o json | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
print(" ".join(sorted(
    r["metadata"]["name"] for r in items
    if not any(c["type"] == "Ready" and c["status"] == "True" for c in r["status"].get("conditions", []))
)) or ("-" if not items else ""))'
}
deadline=$((SECONDS + 900))
while true; do
  waiting=$(not_ready) || waiting="(tilt does not answer)"
  [[ -n $waiting ]] || break
  ((SECONDS < deadline)) || { say "not ready after 900 s: $waiting"; exit 1; }
  kill -0 "$tilt_pid" 2>/dev/null || { say "tilt up exited"; exit 1; }
  sleep 2
done
say "every Tilt resource is ready"
"$K8S_BIN/kubectl" -n task-platform get pods >&2

kubectl_ns="$K8S_BIN/kubectl -n task-platform"
TASK_PLATFORM_BACKEND=$BACKEND TASK_PLATFORM_STACK=external \
  TASK_API_URL=http://127.0.0.1:8000 NOTIFICATION_URL=http://127.0.0.1:8001 \
  TASK_API_KEY=dev-task-api-key \
  TASK_PLATFORM_APP_LOGS="$kubectl_ns logs -l app.kubernetes.io/name={app} -c {app} --tail=-1" \
  TASK_PLATFORM_APP_EXEC="$kubectl_ns exec -i deploy/{app} -c {app} --" \
  TASK_PLATFORM_TILT_DIR=$work/repo KUBECTL=$K8S_BIN/kubectl \
  TRACES_URL=http://127.0.0.1:16686 \
  "$UV" run --frozen pytest -p no:cacheprovider -s \
  tests/integration/test_task_api_contract.py tests/integration/test_event_flows.py \
  tests/integration/test_tracing.py tests/e2e
say "all e2e tests passed"
