#!/usr/bin/env bash
# `make up`: the whole system on this machine. Redis on 6379 (started here, with
# append-only persistence in .run/redis, unless something already listens there), or
# with BACKEND=postgres-kafka PostgreSQL on 5432 and Kafka on 9092 instead
# (tools/serve_backend.py, data in .run/postgres-kafka, components/postgres-kafka), and
# Jaeger for the traces (OTLP on 4317, query API on 16686, unless one listens there),
# then, once Redis answers commands, both services with their sidecars through the Dapr
# CLI's multi-app run (dapr.yaml). Ctrl-C stops it all.
#
# All or nothing: if a sidecar or an app exits while the stack runs, everything stops
# and the reason is the last thing printed (the CLI would not restart it, and a
# half-started stack answers nothing useful). Leaves behind: .run/ (Redis data and log,
# Jaeger's log; `make clean-data` empties it; traces live in Jaeger's memory only) and the CLI's logs under services/*/.dapr/logs.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
source scripts/bootstrap.sh

run_dir=${TASK_PLATFORM_RUN_DIR:-$repo_root/.run}
# Loading a large append-only file takes a while; sidecars started before it ends fail.
redis_timeout=${REDIS_READY_TIMEOUT:-300}
apps=(task-api notification-service)
backend=${BACKEND:-redis}
mkdir -p "$run_dir/redis"
redis_pid=
backend_pid=
jaeger_pid=
dapr_pid=
reason=
cleanup() {
  # The CLI's process group holds every daprd and app: whatever the CLI did not stop on
  # its way out (say, when its output pipe closed) is stopped here.
  if [[ -n $dapr_pid ]] && kill -0 -- "-$dapr_pid" 2>/dev/null; then
    kill -TERM -- "-$dapr_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 -- "-$dapr_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$dapr_pid" 2>/dev/null || true
  fi
  if [[ -n $jaeger_pid ]] && kill -0 "$jaeger_pid" 2>/dev/null; then
    kill "$jaeger_pid"
    wait "$jaeger_pid" 2>/dev/null || true
  fi
  if [[ -n $backend_pid ]] && kill -0 "$backend_pid" 2>/dev/null; then
    echo "stopping PostgreSQL and Kafka"
    kill "$backend_pid"
    wait "$backend_pid" 2>/dev/null || true
  fi
  if [[ -n $redis_pid ]] && kill -0 "$redis_pid" 2>/dev/null; then
    echo "stopping redis-server"
    kill "$redis_pid"
    wait "$redis_pid" 2>/dev/null || true
  fi
  if [[ -n $reason ]]; then
    printf '\nmake up: stopped: %s\n' "$reason" >&2
  fi
}
trap cleanup EXIT

wait_for_redis() {
  local deadline=$((SECONDS + redis_timeout)) reply said_loading=
  while true; do
    reply=$(redis-cli -h 127.0.0.1 -p 6379 ping 2>&1 || true)
    [[ $reply == PONG ]] && return 0
    if [[ $reply == LOADING* && -z $said_loading ]]; then
      echo "Redis is loading its data set into memory; the sidecars start once it answers"
      said_loading=1
    fi
    if [[ -n $redis_pid ]] && ! kill -0 "$redis_pid" 2>/dev/null; then
      reason="redis-server exited: $(tail -n 1 "$run_dir/redis.log")"
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      reason="Redis on 6379 did not answer PING within ${redis_timeout} s (last answer: ${reply:-none}); raise REDIS_READY_TIMEOUT for a large data set, or 'make clean-data'"
      exit 1
    fi
    sleep 0.2
  done
}

# The last line that explains an exit: daprd's last fatal message, else the log's tail.
last_words() { # <app-id> <daprd|app>
  local log line
  log=$(ls -t "services/$1/.dapr/logs/$1_$2_"*.log 2>/dev/null | head -n 1 || true)
  [[ -n $log ]] || { echo "(no log)"; return; }
  line=$(grep 'level=fatal' "$log" | tail -n 1 | sed -E 's/.*msg="?([^"]*)"?.*/\1/' || true)
  [[ -n $line ]] || line=$(grep -v '^[[:space:]]*$' "$log" | tail -n 1 || true)
  echo "${line:-(empty log)} [$log]"
}

# Each sidecar and app must run from the moment all four are seen (or 20 s after the
# start, for one that never came up) until Ctrl-C.
supervise() {
  local started=$SECONDS app up= missing=
  while kill -0 "$dapr_pid" 2>/dev/null; do
    missing=
    for app in "${apps[@]}"; do
      if ! pgrep -g "$dapr_pid" -f -- "--app-id $app( |\$)" >/dev/null; then
        missing=${missing:-"$app's sidecar exited: $(last_words "$app" daprd)"}
      elif ! pgrep -g "$dapr_pid" -f -- "uvicorn ${app//-/_}\.main:app" >/dev/null; then
        missing=${missing:-"$app exited: $(last_words "$app" app)"}
      fi
    done
    [[ -n $missing ]] || up=1
    if [[ -n $missing && -z $stopping ]] && { [[ -n $up ]] || ((SECONDS - started > 20)); }; then
      reason=$missing
      return 1
    fi
    # Ctrl-C reaches this sleep too: that is no failure.
    sleep 1 || true
  done
  wait "$dapr_pid" 2>/dev/null || true
  [[ -n $stopping ]] || reason="the Dapr CLI exited"
  [[ -n $stopping ]]
}

start_redis() {
  if (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
    echo "using the Redis that already listens on 6379"
  else
    redis-server --port 6379 --bind 127.0.0.1 --dir "$run_dir/redis" \
      --appendonly yes --save "" --loglevel notice > "$run_dir/redis.log" 2>&1 &
    redis_pid=$!
    echo "redis-server on 6379 (data in $run_dir/redis: $(du -sh "$run_dir/redis" | cut -f1); log in $run_dir/redis.log)"
  fi
  wait_for_redis
}

# PostgreSQL and Kafka, and a run file whose resources are the Redis profile's with the
# three components of components/postgres-kafka (same names) in place of Redis' ones.
start_postgres_kafka() {
  TASK_PLATFORM_KAFKA=$(scripts/ensure-kafka.sh)
  export TASK_PLATFORM_KAFKA
  "$UV" run --frozen python tools/serve_backend.py "$run_dir" > "$run_dir/postgres-kafka.log" 2>&1 &
  backend_pid=$!
  until grep -q '^ready' "$run_dir/postgres-kafka.log"; do
    if ! kill -0 "$backend_pid" 2>/dev/null; then
      reason="PostgreSQL and Kafka did not start: $(tail -n 3 "$run_dir/postgres-kafka.log")"
      exit 1
    fi
    sleep 0.2
  done
  head -n 1 "$run_dir/postgres-kafka.log"
  local resources=$run_dir/resources-postgres-kafka
  rm -rf "$resources"
  cp -r components/resources "$resources"
  cp components/postgres-kafka/*.yaml "$resources/"
  sed -e "s#resourcesPath: ./components/resources#resourcesPath: $resources#" \
    -e "s#appDirPath: ./#appDirPath: $repo_root/#" dapr.yaml > "$run_dir/dapr-postgres-kafka.yaml"
  run_file=$run_dir/dapr-postgres-kafka.yaml
  # Kafka adds its latency to the outbox relay's: task-api's back-pressure target must
  # allow for it (docs/backends.md).
  export TASK_API_EVENT_LAG_TARGET_SECONDS=3
}

run_file=dapr.yaml
case $backend in
  redis) start_redis ;;
  postgres-kafka) start_postgres_kafka ;;
  *) reason="BACKEND must be redis or postgres-kafka, not '$backend'"; exit 2 ;;
esac

if (exec 3<>/dev/tcp/127.0.0.1/4317) 2>/dev/null; then
  echo "sending traces to whatever already listens on 4317 (OTLP)"
else
  "$TASK_PLATFORM_JAEGER" --config components/tracing/jaeger-local.yaml > "$run_dir/jaeger.log" 2>&1 &
  jaeger_pid=$!
  until (exec 3<>/dev/tcp/127.0.0.1/4317) 2>/dev/null; do
    kill -0 "$jaeger_pid" 2>/dev/null || { reason="jaeger exited: $(tail -n 1 "$run_dir/jaeger.log")"; exit 1; }
    sleep 0.1
  done
fi
# The apps' spans (the sidecars' go there by their Configuration, components/config).
export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317

cat <<MSG
task-api             http://127.0.0.1:8000  (docs: /docs; API key: see components/secrets.json)
notification-service http://127.0.0.1:8001  (follow notifications: make watch)
traces               http://127.0.0.1:16686 (Jaeger's query API; docs/operate.md: Follow a task)
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
# The CLI runs <runtime path>/.dapr/bin/daprd: ours adds loopback listen addresses.
export TASK_PLATFORM_DAPR_RUNTIME_PATH
export DAPR_RUNTIME_PATH=$run_dir/dapr-runtime
mkdir -p "$DAPR_RUNTIME_PATH/.dapr/bin"
ln -sf "$repo_root/scripts/daprd-on-loopback.sh" "$DAPR_RUNTIME_PATH/.dapr/bin/daprd"
# In a process group of its own (set -m), so that cleanup can stop all it started.
set -m
"$TASK_PLATFORM_DAPR_RUNTIME_PATH/.dapr/bin/dapr" run -f "$run_file" &
dapr_pid=$!
set +m
stopping=
trap 'stopping=1; kill -INT "$dapr_pid" 2>/dev/null' INT TERM
supervise
