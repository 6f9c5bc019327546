#!/usr/bin/env bash
# `make test`: lint, format check, strict type check, then every test (unit, and
# integration against real redis-server + daprd + both apps).
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
start=$(date +%s)
source scripts/bootstrap.sh
# tilt, kustomize and Dapr's CRDs for the checks of the deployment files. Assigned
# first, then evaluated: inside `eval "$(...)"` a failing script would not stop us.
tools=$(scripts/ensure-tools.sh)
eval "$tools"
export TILT KUSTOMIZE DAPR_CRDS
echo "== ruff"
"$UV" run --frozen ruff check .
"$UV" run --frozen ruff format --check .
echo "== mypy (strict)"
# One run per package: each has a tests/conftest.py, and one mypy run cannot hold two
# modules of the same name.
for package in libs/contracts libs/dapr-service-kit services/task-api services/notification-service tests bench tools; do
  "$UV" run --frozen mypy "$package"
done
echo "== pytest"
"$UV" run --frozen pytest "$@"
echo "make test: done in $(($(date +%s) - start)) s"
