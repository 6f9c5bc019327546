#!/usr/bin/env bash
# Makes a Docker engine (and `docker compose`) available and prints shell assignments for
# it, so callers can `eval "$(scripts/docker-up.sh)"`:
#   DOCKER=/usr/bin/docker   the client to use (Debian's; the 28.x client some machines carry
#                            in /usr/local/bin refuses BuildKit without a buildx plugin)
#   DOCKER_HOST=unix://...   DOCKER_BUILDKIT=1   DOCKER_CONFIG=... (see ensure-compose.sh)
#
# If an engine already answers (DOCKER_HOST as given, or the default socket), it is used
# and nothing is started. Otherwise Debian's docker.io (and friends) are installed with
# apt-get when missing, and a project-owned dockerd is started with everything of its own
# under the cache (<cache>/docker): data root docker/data (images survive between runs),
# socket, pidfile, exec root, config and log under docker/run. Before it starts, what it
# will change on the host is recorded in docker/run/host-state/ by tools/host_state.py
# (iptables-save and ip6tables-save output, net.ipv4.ip_forward, whether docker0 and
# /etc/docker/key.json exist) for scripts/docker-down.sh to restore; the Debian packages
# include what that restore runs (nftables for nft, iproute2 for ip).
# Leaves behind: that dockerd running (stop it with scripts/docker-down.sh), and the Debian
# packages it installed.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache_root=${TASK_PLATFORM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/task-platform}
docker_dir=$cache_root/docker
run_dir=$docker_dir/run
state_dir=$run_dir/host-state
socket=$run_dir/docker.sock
pidfile=$run_dir/dockerd.pid
log() { printf 'docker-up: %s\n' "$*" >&2; }

client=/usr/bin/docker
answers() { # <client> [DOCKER_HOST]
  [[ -x $1 ]] && DOCKER_HOST=${2-${DOCKER_HOST:-}} timeout 20 "$1" info >/dev/null 2>&1
}

emit() { # <DOCKER_HOST or empty>
  printf 'DOCKER=%q\n' "$client"
  [[ -n $1 ]] && printf 'DOCKER_HOST=%q\nexport DOCKER_HOST\n' "$1"
  printf 'DOCKER_BUILDKIT=1\nexport DOCKER_BUILDKIT\n'
  local compose
  compose=$(DOCKER=$client "$repo_root/scripts/ensure-compose.sh")
  printf '%s\n' "$compose"
  grep -q '^DOCKER_CONFIG=' <<<"$compose" && printf 'export DOCKER_CONFIG\n'
  return 0
}

own_host=unix://$socket
# 1. Our own dockerd from an earlier call, still running.
if [[ -S $socket ]] && answers "$client" "$own_host"; then
  log "reusing the project's dockerd ($own_host)"
  emit "$own_host"
  exit 0
fi
# 2. An engine the user already has (DOCKER_HOST as given, or the default socket).
for c in /usr/bin/docker "$(command -v docker 2>/dev/null || true)"; do
  if [[ -n $c ]] && answers "$c"; then
    client=$c
    log "using the Docker engine that already answers (${DOCKER_HOST:-default socket}); starting nothing"
    emit "${DOCKER_HOST:-}"
    exit 0
  fi
done

# 3. Start our own.
[[ $(id -u) == 0 ]] || { log "MISSING: a Docker engine (none answers, and starting one needs root)"; exit 1; }
# <a file the package installs>:<package>. Debian's iptables does not bring nft: the
# restore deletes the nf_tables tables dockerd created with it (package nftables).
need=()
for pair in /usr/bin/docker:docker.io /usr/sbin/dockerd:docker.io /usr/bin/containerd:containerd \
  /usr/sbin/runc:runc /usr/sbin/iptables:iptables /usr/sbin/nft:nftables /sbin/ip:iproute2 \
  /usr/sbin/debootstrap:debootstrap /usr/lib/cni/bridge:containernetworking-plugins; do
  [[ -e ${pair%%:*} ]] || need+=("${pair#*:}")
done
if ((${#need[@]})); then
  log "installing Debian packages: ${need[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${need[@]}") >&2
fi

mkdir -p "$docker_dir/data" "$run_dir/exec"
# Keeps an earlier start's record that was never restored: it holds the state to go back to.
python3 "$repo_root/tools/host_state.py" docker-record "$state_dir"

# An empty config of our own, so the host's /etc/docker/daemon.json does not apply.
[[ -f $run_dir/daemon.json ]] || echo '{}' >"$run_dir/daemon.json"
rm -f "$socket"
log "starting dockerd (data root $docker_dir/data, log $run_dir/dockerd.log)"
setsid /usr/sbin/dockerd \
  --config-file "$run_dir/daemon.json" \
  --data-root "$docker_dir/data" \
  --exec-root "$run_dir/exec" \
  --pidfile "$pidfile" \
  --host "$own_host" \
  >"$run_dir/dockerd.log" 2>&1 </dev/null &
for _ in $(seq 120); do
  answers "$client" "$own_host" && break
  if ! kill -0 $! 2>/dev/null; then
    log "dockerd exited; last lines of $run_dir/dockerd.log:"
    tail -20 "$run_dir/dockerd.log" >&2
    exit 1
  fi
  sleep 0.5
done
answers "$client" "$own_host" || { log "dockerd did not answer within 60 s (see $run_dir/dockerd.log)"; exit 1; }
log "dockerd $("$client" -H "$own_host" version -f '{{.Server.Version}}') up, pid $(cat "$pidfile")"
emit "$own_host"
