#!/usr/bin/env bash
# `make up`: the whole system on this machine. Redis on 6379 (started here, with
# append-only persistence, unless something already listens there), then both services
# with their sidecars through the Dapr CLI's multi-app run (dapr.yaml). Ctrl-C stops it
# all.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
source scripts/bootstrap.sh

run_dir=$repo_root/.run
mkdir -p "$run_dir/redis"
redis_pid=
dapr_pid=
cleanup() {
  # The CLI leads a process group of its own with every daprd and app in it: whatever
  # it did not stop on its way out (say, when its output pipe closed) is stopped here.
  if [[ -n $dapr_pid ]] && kill -0 -- "-$dapr_pid" 2>/dev/null; then
    kill -TERM -- "-$dapr_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 -- "-$dapr_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$dapr_pid" 2>/dev/null || true
  fi
  if [[ -n $redis_pid ]] && kill -0 "$redis_pid" 2>/dev/null; then
    echo "stopping redis-server"
    kill "$redis_pid"
    wait "$redis_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

if (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  echo "using the Redis that already listens on 6379"
else
  redis-server --port 6379 --bind 127.0.0.1 --dir "$run_dir/redis" \
    --appendonly yes --save "" --loglevel warning > "$run_dir/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null && break
    sleep 0.1
  done
  echo "redis-server on 6379 (append-only file in .run/redis, log in .run/redis.log)"
fi

cat <<MSG
task-api             http://127.0.0.1:8000  (docs: /docs; API key: see components/secrets.json)
notification-service http://127.0.0.1:8001  (follow notifications: make watch)
Ctrl-C stops everything.
MSG
# The sidecars announce themselves at this address in name resolution: loopback works
# on any laptop, with or without a network.
export DAPR_HOST_IP=127.0.0.1
# App and sidecar authenticate each other with the tokens of the local secrets file:
# daprd requires DAPR_API_TOKEN from the SDK and sends APP_API_TOKEN to the app. The
# Dapr CLI passes its environment to both daprd and the apps.
read_secret() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
    components/secrets.json "$1"
}
DAPR_API_TOKEN=$(read_secret dapr-api-token)
APP_API_TOKEN=$(read_secret app-api-token)
export DAPR_API_TOKEN APP_API_TOKEN
export DAPR_RUNTIME_PATH=$TASK_PLATFORM_DAPR_RUNTIME_PATH
# Not exec: the trap must still stop the Redis this script started.
"$TASK_PLATFORM_DAPR_RUNTIME_PATH/.dapr/bin/dapr" run -f dapr.yaml &
dapr_pid=$!
trap 'kill -INT "$dapr_pid" 2>/dev/null' INT TERM
wait "$dapr_pid" || wait "$dapr_pid" || true
