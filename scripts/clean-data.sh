#!/usr/bin/env bash
# `make clean-data`: deletes the data `make up` keeps between runs (.run/redis, Redis'
# append-only files, which grow with every task ever written), so the next `make up`
# starts empty. Refuses while a Redis serves that directory. Touches nothing else.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data_dir=${TASK_PLATFORM_RUN_DIR:-$repo_root/.run}/redis
[[ -d $data_dir ]] || { echo "nothing to clean: $data_dir does not exist"; exit 0; }
served=$(redis-cli -h 127.0.0.1 -p 6379 --raw config get dir 2>/dev/null | sed -n 2p || true)
if [[ -n $served && $(realpath "$served") == $(realpath "$data_dir") ]]; then
  echo "the Redis on 6379 is serving $data_dir: stop 'make up' first" >&2
  exit 1
fi
size=$(du -sh "$data_dir" | cut -f1)
rm -rf "$data_dir"
echo "deleted $data_dir ($size); the next 'make up' starts with no tasks"
