#!/usr/bin/env bash
# Makes sure every base image the project builds on is in the Docker engine that DOCKER /
# DOCKER_HOST name (run scripts/docker-up.sh first): the list is scripts/standin/images.txt,
# less the images of backend profiles other than BACKEND's (default redis), and stock
# daprd's unless DAPRD (or TASK_PLATFORM_DAPRD) is stock.
# For each image: present locally -> nothing to do; else `docker pull` once (with
# internet this gets the REAL image); else a local stand-in is built under the same name
# from scripts/standin/<recipe>.Dockerfile, labelled org.task-platform.standin=true, and a
# warning says so (every run, while a stand-in is in use).
# Stand-ins are built from: a Debian bookworm rootfs (debootstrap --variant=minbase from
# this machine's Debian mirror), uv from its PyPI wheel, the pinned stock daprd
# (scripts/ensure-dapr.sh stock), the pinned jaeger (scripts/ensure-jaeger.sh), the pinned
# Kafka's jars (scripts/ensure-kafka.sh), BuildKit's dockerfile-frontend built from its Go
# module, this machine's Go toolchain and its CA bundle.
# Leaves behind: the images in the engine; in the cache, standin/bookworm-minbase.tar.gz
# (the rootfs), dockerfile-frontend-<version>/dockerfile-frontend and
# jaeger-<version>/jaeger. Logs to stderr only.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_root/versions.env"
source "$repo_root/scripts/go-modules.sh"
cache_root=${TASK_PLATFORM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/task-platform}
recipes=$repo_root/scripts/standin
docker=${DOCKER:-/usr/bin/docker}
export DOCKER_BUILDKIT=1
base_image=task-platform/standin-bookworm:minbase
log() { printf 'standin-images: %s\n' "$*" >&2; }
loud() { printf '\n*** standin-images: %s ***\n\n' "$*" >&2; }

present() { "$docker" image inspect "$1" >/dev/null 2>&1; }
is_standin() { [[ $("$docker" image inspect -f '{{index .Config.Labels "org.task-platform.standin"}}' "$1" 2>/dev/null) == true ]]; }


debian_mirror() { # the bookworm mirror from /etc/apt/sources.list*, one-line or deb822 format
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '$1 == "deb" && $0 !~ /\[/ && $3 == "bookworm" {print $2; exit}')
  [[ -n $m ]] || m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v RS= '
    /(^|\n)Suites:([^\n]* )?bookworm( |\n|$)/ && match($0, /URIs: *[^ \n]+/) {
      split(substr($0, RSTART, RLENGTH), a, / +/); print a[2]; exit }')
  printf '%s\n' "${m:-http://deb.debian.org/debian}"
}

ensure_base() { # the Debian bookworm minbase image the python and redis stand-ins start from
  present "$base_image" && return 0
  local tarball=$cache_root/standin/bookworm-minbase.tar.gz
  if [[ ! -f $tarball ]]; then
    [[ -x /usr/sbin/debootstrap ]] || { log "MISSING: debootstrap (apt-get install debootstrap)"; return 1; }
    local mirror rootfs
    mirror=$(debian_mirror)
    rootfs=$(mktemp -d)
    log "debootstrap --variant=minbase bookworm from $mirror (about a minute)"
    /usr/sbin/debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 ||
      { tail -20 "$rootfs.log" >&2; return 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    mkdir -p "$(dirname "$tarball")"
    tar -C "$rootfs" --numeric-owner -czf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs" "$rootfs.log"
  fi
  log "importing $tarball as $base_image"
  "$docker" import -c 'CMD ["bash"]' "$tarball" "$base_image" >/dev/null
}

uv_files() { # <dir> <version>: uv and uvx from the uv wheel on PyPI (or bootstrap's copy of it)
  local cached=$cache_root/uv-$2/bin
  if [[ -x $cached/uv && -x $cached/uvx ]] && "$cached/uv" --version | grep -q "^uv $2\b"; then
    cp "$cached/uv" "$cached/uvx" "$1/"
    return 0
  fi
  log "fetching the uv $2 wheel from PyPI"
  python3 -m venv "$1/venv"
  "$1/venv/bin/pip" download --quiet --no-deps --only-binary=:all: "uv==$2" -d "$1/wheel"
  python3 - "$1" <<'EOF'
import sys, zipfile, pathlib
out = pathlib.Path(sys.argv[1])
wheel = next((out / "wheel").glob("uv-*.whl"))
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.endswith(("/scripts/uv", "/scripts/uvx")):
            target = out / name.rsplit("/", 1)[1]
            target.write_bytes(z.read(name))
            target.chmod(0o755)
EOF
  rm -rf "$1/venv" "$1/wheel"
}

daprd_file() { # <dir>: the pinned daprd as Dapr ships it (never the project's patched one)
  local runtime_dir
  runtime_dir=$("$repo_root/scripts/ensure-dapr.sh" stock)
  cp "$runtime_dir/.dapr/bin/daprd" "$1/daprd"
}

go_files() { # <dir> <image>: this machine's Go toolchain, for the golang:<version>-<debian> stand-in
  local version=${2##*:}
  version=${version%%-*}
  command -v go >/dev/null 2>&1 || { log "MISSING: Go $version, for the stand-in of $2"; return 1; }
  local goroot found
  goroot=$(go env GOROOT)
  found=$(go env GOVERSION)
  [[ $found == "go$version" ]] ||
    loud "the stand-in of $2 carries this machine's $found, not Go $version"
  cp -a "$goroot" "$1/go"
}

frontend_file() { # <dir>: BuildKit's dockerfile-frontend, built once per version
  local bin=$cache_root/dockerfile-frontend-$BUILDKIT_VERSION/dockerfile-frontend
  if [[ ! -x $bin ]]; then
    command -v go >/dev/null 2>&1 || { log "MISSING: Go 1.26+, to build the Dockerfile frontend"; return 1; }
    log "building dockerfile-frontend from github.com/moby/buildkit v$BUILDKIT_VERSION (first time only: about 2 minutes)"
    copy_module "github.com/moby/buildkit@v$BUILDKIT_VERSION" "$1/buildkit"
    mkdir -p "$(dirname "$bin")"
    (cd "$1/buildkit" && CGO_ENABLED=0 nice go build -trimpath -ldflags "-s -w" \
      -o "$bin.tmp" ./frontend/dockerfile/cmd/dockerfile-frontend)
    mv "$bin.tmp" "$bin"
    chmod -R u+w "$1/buildkit" && rm -rf "$1/buildkit"
  fi
  cp "$bin" "$1/dockerfile-frontend"
}

build_standin() { # <image> <recipe>
  local image=$1 recipe=$2 ctx=$work/$2
  mkdir -p "$ctx"
  cp "$recipes/$recipe.Dockerfile" "$ctx/Dockerfile"
  case $recipe in
    python)
      ensure_base
      cp "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$ctx/ca-certificates.crt" ;;
    redis) ensure_base; cp "$recipes/redis-entry.sh" "$ctx/" ;;
    postgres) ensure_base; cp "$recipes/postgres-entry.sh" "$ctx/" ;;
    kafka)
      ensure_base
      cp "$recipes"/kafka-{run.sh,bin.sh,log4j2.yaml,tools-log4j2.yaml} "$ctx/"
      cp -r "$("$repo_root/scripts/ensure-kafka.sh")/libs" "$ctx/libs" ;;
    uv) uv_files "$ctx" "${image##*:}" ;;
    daprd) daprd_file "$ctx" ;;
    golang)
      ensure_base
      go_files "$ctx" "$image"
      cp "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$ctx/ca-certificates.crt" ;;
    distroless)
      ensure_base
      cp "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$ctx/ca-certificates.crt" ;;
    jaeger) cp "$("$repo_root/scripts/ensure-jaeger.sh")" "$ctx/jaeger" ;;
    frontend) frontend_file "$ctx" ;;
    *) log "no recipe '$recipe'"; return 1 ;;
  esac
  log "building stand-in $image"
  "$docker" build --quiet --build-arg "BASE=$base_image" --build-arg "STANDIN_FOR=$image" \
    -t "$image" "$ctx" >/dev/null
}

work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
# One run at a time per cache (make e2e-compose and make e2e-k8s may start together).
mkdir -p "$cache_root/standin"
exec 9>"$cache_root/standin/.lock"
flock 9
standins=()
backend=${BACKEND:-redis}
daprd=${DAPRD:-${TASK_PLATFORM_DAPRD:-project}}
while read -r image recipe only; do
  [[ -z $image || $image == \#* ]] && continue
  [[ -z $only || $only == "$backend" || $only == "daprd=$daprd" ]] || continue
  image=$(eval "printf '%s' \"$image\"") # ${VAR} from versions.env
  if ! present "$image"; then
    log "pulling $image"
    if timeout 120 "$docker" pull --quiet "$image" >/dev/null 2>&1; then
      log "pulled the real $image"
    else
      log "cannot pull $image: building a local stand-in"
      build_standin "$image" "$recipe"
    fi
  fi
  is_standin "$image" && standins+=("$image")
done <"$recipes/images.txt"

if ((${#standins[@]})); then
  loud "LOCAL STAND-IN IMAGES IN USE (the registry could not be reached): ${standins[*]}. \
They are labelled org.task-platform.standin=true; 'docker rmi' them to pull the real ones."
fi
