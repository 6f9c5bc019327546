#!/usr/bin/env bash
# `make cluster-down`: stops everything `make cluster-up` started (only processes it can
# prove are its own, by pidfile), unmounts what the kubelet and containerd mounted, deletes
# the links it created and puts iptables rules and sysctls back as they were. Idempotent.
# The cluster's tool only needs the standard library: no uv sync, no builds.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exec python3 "$repo_root/tools/cluster" down
