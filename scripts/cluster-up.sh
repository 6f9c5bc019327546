#!/usr/bin/env bash
# `make cluster-up`: a real single-node Kubernetes cluster with Dapr on this machine (root,
# Linux). Idempotent: when it is already up and healthy it only prints where it is.
# The first run builds Kubernetes, CoreDNS, helm, the registry and Dapr's control plane
# from Go modules into the cache (scripts/ensure-cluster-tools.sh: ~30-40 min on 2 cores);
# later runs start in a few minutes. Prints shell assignments on stdout, so
#   eval "$(scripts/cluster-up.sh)"   exports KUBECONFIG (context task-platform-local).
# Everything else, and the logs' location, goes to stderr. See tools/cluster/.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
source scripts/bootstrap.sh >&2
exec "$UV" run --frozen python tools/cluster up
