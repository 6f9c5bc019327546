#!/usr/bin/env bash
# `make clean-data`: deletes the data `make up` keeps between runs (.run/redis, Redis'
# append-only files, which grow with every task ever written, and .run/postgres-kafka,
# the PostgreSQL cluster and Kafka log of BACKEND=postgres-kafka), so the next
# `make up` starts empty. Refuses while a server of make up serves them. Touches
# nothing else.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
run_dir=${TASK_PLATFORM_RUN_DIR:-$repo_root/.run}
cleaned=
clean() { # <dir> <what the next make up starts with>
  local size
  size=$(du -sh "$1" | cut -f1)
  rm -rf "$1"
  echo "deleted $1 ($size); the next '$2' starts with no tasks"
  cleaned=1
}

redis_dir=$run_dir/redis
if [[ -d $redis_dir ]]; then
  served=$(redis-cli -h 127.0.0.1 -p 6379 --raw config get dir 2>/dev/null | sed -n 2p || true)
  if [[ -n $served && $(realpath "$served") == $(realpath "$redis_dir") ]]; then
    echo "the Redis on 6379 is serving $redis_dir: stop 'make up' first" >&2
    exit 1
  fi
  clean "$redis_dir" "make up"
fi

backend_dir=$run_dir/postgres-kafka
if [[ -d $backend_dir ]]; then
  if pgrep -f "serve_backend.py $run_dir\$" >/dev/null; then
    echo "'make up BACKEND=postgres-kafka' is serving $backend_dir: stop it first" >&2
    exit 1
  fi
  clean "$backend_dir" "make up BACKEND=postgres-kafka"
fi
[[ -n $cleaned ]] || echo "nothing to clean in $run_dir"
