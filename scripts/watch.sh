#!/usr/bin/env bash
# `make watch`: follow the notification lines of the stack `make up` runs. The Dapr
# CLI writes each app's output to <app dir>/.dapr/logs/<app-id>_app_<time>.log.
set -euo pipefail
log_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/services/notification-service/.dapr/logs
latest=$(ls -t "$log_dir"/notification-service_app_*.log 2>/dev/null | head -n 1 || true)
if [[ -z $latest ]]; then
  echo "no notification-service log yet: start the stack with 'make up' in another terminal" >&2
  exit 1
fi
echo "following $latest (Ctrl-C to stop)" >&2
# Lines read `== APP - notification-service == INFO notifications: NOTIFY ...`.
tail -n +1 -F "$latest" | grep --line-buffered -F ' notifications: ' | sed -u 's/^.* notifications: //'
