#!/usr/bin/env bash
# The daprd that `make up` hands to the Dapr CLI (as <runtime path>/.dapr/bin/daprd):
# the pinned daprd with the listen addresses the CLI's run file cannot set. Without
# them daprd's internal gRPC port (app-to-app invocation, where neither token is asked
# for) and its metrics port listen on every interface. Runs nothing else, leaves nothing.
set -euo pipefail
exec "${TASK_PLATFORM_DAPR_RUNTIME_PATH:?set by scripts/bootstrap.sh}/.dapr/bin/daprd" "$@" \
  --dapr-internal-grpc-listen-address 127.0.0.1 \
  --metrics-listen-address 127.0.0.1
