#!/usr/bin/env bash
# Stops the dockerd that scripts/docker-up.sh started (found by its pidfile; no other
# dockerd is touched), waits for it to exit, and restores what it changed on the host from
# the record docker-up.sh made before starting it (tools/host_state.py docker-restore):
# Docker's iptables/ip6tables rules, chains and policies (rules others added meanwhile
# stay), the nf_tables tables it created, the docker0 link and /etc/docker/key.json when
# they did not exist before, net.ipv4.ip_forward. Every restore step runs even when one
# before it failed; the failures are listed at the end and the exit status is 1.
# Idempotent, and a no-op when docker-up.sh started nothing (an engine that was already
# there is left alone). While containers still run in that dockerd (another make target
# using it), it is left up unless DOCKER_DOWN_FORCE=1.
# Leaves behind: the cache (<cache>/docker/data keeps the images); when a step failed or
# its command was missing (each says what it left and how to remove it by hand), the
# record too, so that running this again retries.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache_root=${TASK_PLATFORM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/task-platform}
run_dir=$cache_root/docker/run
state_dir=$run_dir/host-state
pidfile=$run_dir/dockerd.pid
log() { printf 'docker-down: %s\n' "$*" >&2; }

is_our_dockerd() { # <pid>
  [[ -r /proc/$1/cmdline ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "--pidfile $pidfile"
}

wait_gone() { # <pid> <seconds>
  local i
  for ((i = 0; i < $2 * 2; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.5
  done
  return 1
}

if [[ -f $pidfile ]]; then
  pid=$(cat "$pidfile")
  if is_our_dockerd "$pid"; then
    # Another user of the same dockerd (make e2e-k8s and make e2e-compose share it) may
    # still have containers up: then the last one out stops it.
    running=$(/usr/bin/docker -H "unix://$run_dir/docker.sock" ps --format '{{.Names}}' 2>/dev/null || true)
    if [[ -n $running && -z ${DOCKER_DOWN_FORCE:-} ]]; then
      log "containers still run in the project's dockerd ($(tr "\n" " " <<<"$running")): leaving it up" \
        "(DOCKER_DOWN_FORCE=1 stops it anyway)"
      exit 0
    fi
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    if ! wait_gone "$pid" 60; then
      log "dockerd did not exit within 60 s; killing it and its containerd"
      kill -KILL "$pid" 2>/dev/null || true
      cpid=$(cat "$run_dir/exec/containerd/containerd.pid" 2>/dev/null || true)
      [[ -n $cpid ]] && kill -KILL "$cpid" 2>/dev/null || true
      wait_gone "$pid" 10 || true
    fi
  fi
  rm -f "$pidfile"
fi

if [[ ! -f $state_dir/recorded ]]; then
  log "nothing to restore (no dockerd of ours was started, or it is already torn down)"
  exit 0
fi
exec python3 "$repo_root/tools/host_state.py" docker-restore "$state_dir"
