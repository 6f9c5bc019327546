#!/usr/bin/env bash
# `make test-backends`: the integration tests of `make test` again, on the postgres-kafka
# profile (components/postgres-kafka): each stack the harness starts has a PostgreSQL
# (Debian's package, initdb into the test's directory) and a Kafka broker (KRaft, its
# jars from Maven Central through scripts/ensure-kafka.sh) on free loopback ports
# instead of Redis. Leaves behind: the Kafka jars in the cache; the servers stop with
# their stacks. Extra arguments go to pytest (e.g. -k faults).
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
start=$(date +%s)
source scripts/bootstrap.sh
TASK_PLATFORM_KAFKA=$(scripts/ensure-kafka.sh)
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  echo "test-backends: MISSING: the PostgreSQL server (Debian: apt-get install postgresql)" >&2
  exit 1
fi
export TASK_PLATFORM_KAFKA TASK_PLATFORM_BACKEND=postgres-kafka
# test_make_up.py runs `make up BACKEND=postgres-kafka` here (its Redis tests skip).
"$UV" run --frozen pytest tests/integration "$@"
echo "make test-backends: done in $(($(date +%s) - start)) s"
