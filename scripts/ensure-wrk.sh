#!/usr/bin/env bash
# The load generator of `make bench`: wrk, from Debian's packages.
set -euo pipefail
command -v wrk >/dev/null 2>&1 && exit 0
if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "bench: installing wrk (Debian package)" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk) >&2
elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk) >&2
else
  echo "bench: MISSING: wrk (Debian/Ubuntu: apt-get install wrk; macOS: brew install wrk)" >&2
  exit 1
fi
