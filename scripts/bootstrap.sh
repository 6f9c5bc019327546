# Sourced by the make targets: makes sure this machine has what the project needs, or
# says exactly what is missing, and exports
#   UV                                 the uv binary to use
#   TASK_PLATFORM_DAPR_RUNTIME_PATH    the directory whose .dapr/bin holds daprd and dapr:
#                                      the project's daprd (the pinned release with the fixes
#                                      in third_party/dapr), or stock with TASK_PLATFORM_DAPRD=stock
#   TASK_PLATFORM_STOCK_DAPR_RUNTIME_PATH  the same for stock daprd (the expected-failure tests)
#   TASK_PLATFORM_JAEGER               the jaeger binary (the trace backend)
# Installs: uv (from PyPI, into a cache outside the repo) when none is on PATH,
# redis-server (Debian package) when missing and apt-get can be used, the Python
# dependencies (uv sync, from uv.lock), the pinned Dapr runtime (scripts/ensure-dapr.sh)
# and Jaeger (scripts/ensure-jaeger.sh).

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_root/versions.env"
cache_root=${TASK_PLATFORM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/task-platform}
UV_VERSION=0.13.9

say() { printf 'bootstrap: %s\n' "$*" >&2; }
missing() { say "MISSING: $*"; return 1; }

need_python() {
  local py
  for py in python3.13 python3.12 python3.11 python3; do
    if command -v "$py" >/dev/null 2>&1 &&
       "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PYTHON=$(command -v "$py")
      return 0
    fi
  done
  missing "Python 3.11 or newer (e.g. 'apt-get install python3'); uv cannot download one here."
}

need_uv() {
  if command -v uv >/dev/null 2>&1; then
    UV=$(command -v uv)
    return 0
  fi
  UV=$cache_root/uv-$UV_VERSION/bin/uv
  if [[ ! -x $UV ]]; then
    say "installing uv $UV_VERSION from PyPI into $cache_root/uv-$UV_VERSION"
    "$PYTHON" -m venv "$cache_root/uv-$UV_VERSION" &&
      "$cache_root/uv-$UV_VERSION/bin/pip" install --quiet "uv==$UV_VERSION" ||
      missing "uv (tried 'pip install uv==$UV_VERSION'; install it by hand and re-run)"
  fi
}

need_redis() {
  command -v redis-server >/dev/null 2>&1 && return 0
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing redis-server (Debian package)"
    # No service is started: the project starts its own redis-server where it needs one.
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >&2 ||
      missing "redis-server: 'apt-get install redis-server' failed"
  elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    say "installing redis-server (Debian package) with sudo"
    (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >&2 ||
      missing "redis-server: run 'sudo apt-get install redis-server'"
  else
    missing "redis-server 7 (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)"
  fi
}

need_python_deps() {
  (cd "$repo_root" && "$UV" sync --frozen --all-packages --quiet) || missing "the Python dependencies ('uv sync --frozen' failed)"
}

need_dapr() {
  TASK_PLATFORM_DAPR_RUNTIME_PATH=$("$repo_root/scripts/ensure-dapr.sh") &&
    TASK_PLATFORM_STOCK_DAPR_RUNTIME_PATH=$("$repo_root/scripts/ensure-dapr.sh" stock) ||
    missing "daprd $DAPR_RUNTIME_VERSION (see above)"
}

need_jaeger() {
  TASK_PLATFORM_JAEGER=$("$repo_root/scripts/ensure-jaeger.sh") || missing "jaeger $JAEGER_VERSION (see above)"
}
need_python && need_uv && need_redis && need_python_deps && need_dapr && need_jaeger || return 1
export UV TASK_PLATFORM_DAPR_RUNTIME_PATH TASK_PLATFORM_STOCK_DAPR_RUNTIME_PATH TASK_PLATFORM_JAEGER
