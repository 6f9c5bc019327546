#!/usr/bin/env bash
# Provides what `make cluster-up` needs to run a single-node Kubernetes cluster with Dapr,
# built once from Go modules into a cache outside the repo (keyed by version), and prints
# shell assignments for them on stdout (everything else goes to stderr):
#   K8S_BIN=...          kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
#                        kube-proxy, kubectl (from the k8s.io/kubernetes module)
#   PAUSE=...            a static pause binary (Kubernetes' build/pause/linux/pause.c)
#   COREDNS=...  HELM=...  REGISTRY=...
#   DAPR_CP_BIN=...      Dapr's operator, injector, sentry and placement
#   DAPR_CHART=...       the Dapr helm chart (charts/dapr inside the dapr module)
#   ETCD=... CONTAINERD=... CTR=... RUNC=... CNI_BIN=...   from Debian packages
# Debian packages (etcd-server, containerd, runc, containernetworking-plugins, iptables,
# nftables (nft: `make cluster-down` deletes the emptied nf_tables tables with it),
# iproute2, kmod (modprobe), conntrack, openssl; gcc and libc6-dev for the static pause
# binary) are installed with apt-get when missing and we are root.
#
# Usage: scripts/ensure-cluster-tools.sh [tool ...]   (default: all; tools: debs k8s pause
# coredns helm registry dapr-cp)
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../versions.env
source "$repo_root/versions.env"
source "$repo_root/scripts/go-modules.sh"
cache_root=${TASK_PLATFORM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/task-platform}
export PATH=/usr/local/go/bin:$PATH
log() { printf 'ensure-cluster-tools: %s\n' "$*" >&2; }

command -v go >/dev/null 2>&1 || { log "MISSING: Go 1.26+ (/usr/local/go/bin/go)"; exit 1; }

work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

build_main() { # <binary> <module@version> <package> <ldflags>: one static binary
  local name
  name=$(basename "$1")
  copy_module "$2" "$work/$name"
  mkdir -p "$(dirname "$1")"
  (cd "$work/$name" && CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w $4" \
    -o "$1.tmp" "$3")
  mv "$1.tmp" "$1"
}

timed() { # <what> <command...>: one build at a time per tool (a second caller waits, then
  # finds it built); logs how long a build took (nothing when cached)
  local start=$SECONDS lock_fd
  mkdir -p "$cache_root"
  exec {lock_fd}>"$cache_root/.build-$1.lock"
  flock "$lock_fd"
  "${@:2}"
  exec {lock_fd}>&-
  ((SECONDS - start < 2)) || log "$1: built in $((SECONDS - start)) s"
}

# --- Debian packages -------------------------------------------------------------
ensure_debs() {
  local missing=() pkg
  for pkg in etcd-server:etcd containerd:containerd runc:runc iptables:iptables nftables:nft \
             iproute2:ip kmod:modprobe \
             conntrack:conntrack containernetworking-plugins:/usr/lib/cni/bridge \
             openssl:openssl gcc:gcc libc6-dev:/usr/lib/x86_64-linux-gnu/libc.a; do
    local bin=${pkg#*:}
    if [[ $bin == /* ]]; then [[ -e $bin ]] && continue; else command -v "$bin" >/dev/null 2>&1 && continue; fi
    missing+=("${pkg%%:*}")
  done
  ((${#missing[@]})) || return 0
  if [[ $(id -u) != 0 ]]; then
    log "MISSING Debian packages: ${missing[*]} (apt-get install ${missing[*]})"
    return 1
  fi
  log "installing Debian packages: ${missing[*]}"
  # No service is started: cluster-up runs its own etcd and containerd.
  {
    apt-get -o DPkg::Lock::Timeout=600 update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends "${missing[@]}"
  } >&2
  # Debian starts the packaged daemons; this project never uses them.
  local svc
  for svc in etcd containerd; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
      systemctl disable --now "$svc" >&2 || true
    fi
  done
}

# --- Kubernetes ------------------------------------------------------------------
k8s_dir=$cache_root/kubernetes-$KUBERNETES_VERSION
k8s_tools=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
k8s_ok() {
  local t
  for t in "${k8s_tools[@]}"; do [[ -x $k8s_dir/$t ]] || return 1; done
}
build_k8s() {
  k8s_ok && return 0
  log "building Kubernetes $KUBERNETES_VERSION (${k8s_tools[*]}) from Go modules (first time only: ~15 min on 2 cores)"
  local src=$work/kubernetes minor=${KUBERNETES_VERSION#*.}
  minor=${minor%%.*}
  copy_module "k8s.io/kubernetes@v$KUBERNETES_VERSION" "$src"
  # The module points the k8s.io/* staging modules at ./staging/..., which is not in the
  # module zip: use the published v0.<minor>.<patch> modules instead. The sample-*
  # modules are not served by the proxy and nothing we build imports them.
  (
    cd "$src"
    go mod edit -json | python3 -c '
import json, sys
mod = json.load(sys.stdin)
staged = {r["Old"]["Path"] for r in mod.get("Replace") or [] if r["New"]["Path"].startswith("./staging/")}
args = [f"-dropreplace={p}" for p in sorted(staged)]
for r in mod.get("Require") or []:
    p = r["Path"]
    if p.startswith("k8s.io/sample-"):
        args.append(f"-droprequire={p}")
    elif p in staged:
        args.append(f"-require={p}@v0." + sys.argv[1])
print("\n".join(args))
' "${KUBERNETES_VERSION#*.}" >"$work/k8s-edits"
    mapfile -t edits <"$work/k8s-edits"
    go mod edit "${edits[@]}"
    local v=v$KUBERNETES_VERSION ld=""
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
      ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    local targets=()
    for t in "${k8s_tools[@]}"; do targets+=("./cmd/$t"); done
    mkdir -p "$k8s_dir.tmp"
    CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w$ld" -o "$k8s_dir.tmp/" "${targets[@]}"
    # pause.c ships in the same module.
    cp build/pause/linux/pause.c "$k8s_dir.tmp/pause.c"
  )
  rm -rf "$k8s_dir" && mv "$k8s_dir.tmp" "$k8s_dir"
}

# --- pause (static C binary, the pod sandbox's process) --------------------------
pause_bin=$cache_root/pause-$KUBERNETES_VERSION/pause
build_pause() {
  [[ -x $pause_bin ]] && return 0
  command -v gcc >/dev/null 2>&1 || { log "MISSING: gcc (apt-get install gcc libc6-dev), to build pause"; return 1; }
  local c=$k8s_dir/pause.c
  if [[ ! -f $c ]]; then
    c=$(module_dir "k8s.io/kubernetes@v$KUBERNETES_VERSION")/build/pause/linux/pause.c
  fi
  log "building the static pause binary"
  mkdir -p "$(dirname "$pause_bin")"
  gcc -Os -Wall -Werror -static -DVERSION="v$KUBERNETES_VERSION-task-platform" -o "$pause_bin.tmp" "$c"
  strip "$pause_bin.tmp" 2>/dev/null || true
  mv "$pause_bin.tmp" "$pause_bin"
}

# --- CoreDNS ---------------------------------------------------------------------
coredns_bin=$cache_root/coredns-$COREDNS_VERSION/coredns
build_coredns() {
  [[ -x $coredns_bin ]] && return 0
  log "building CoreDNS $COREDNS_VERSION from Go modules (first time only: ~3 min)"
  build_main "$coredns_bin" "github.com/coredns/coredns@v$COREDNS_VERSION" . \
    "-X github.com/coredns/coredns/coremain.GitCommit=v$COREDNS_VERSION"
}

# --- helm ------------------------------------------------------------------------
helm_bin=$cache_root/helm-$HELM_VERSION/helm
build_helm() {
  [[ -x $helm_bin ]] && return 0
  log "building helm $HELM_VERSION from Go modules (first time only: ~5 min)"
  mkdir -p "$(dirname "$helm_bin")"
  GOBIN=$work/helm-bin CGO_ENABLED=0 go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
  mv "$work/helm-bin/helm" "$helm_bin"
}

# --- registry (distribution) -----------------------------------------------------
registry_bin=$cache_root/registry-$REGISTRY_VERSION/registry
build_registry() {
  [[ -x $registry_bin ]] && return 0
  log "building the registry (distribution $REGISTRY_VERSION) from Go modules"
  build_main "$registry_bin" "github.com/distribution/distribution/v3@v$REGISTRY_VERSION" \
    ./cmd/registry "-X github.com/distribution/distribution/v3/version.version=v$REGISTRY_VERSION"
}

# --- Dapr control plane ----------------------------------------------------------
dapr_cp_dir=$cache_root/dapr-controlplane-$DAPR_RUNTIME_VERSION
dapr_cp_tools=(operator injector sentry placement)
dapr_cp_ok() {
  local t
  for t in "${dapr_cp_tools[@]}"; do [[ -x $dapr_cp_dir/$t ]] || return 1; done
}
build_dapr_cp() {
  dapr_cp_ok && return 0
  # The scheduler is left out: one of its dependencies (diagridio/go-etcd-cron) is not
  # served by the Go module proxy. The chart is installed with the scheduler disabled.
  log "building Dapr $DAPR_RUNTIME_VERSION control plane (${dapr_cp_tools[*]}) from Go modules (~5 min)"
  copy_module "github.com/dapr/dapr@v$DAPR_RUNTIME_VERSION" "$work/dapr"
  local targets=() t
  for t in "${dapr_cp_tools[@]}"; do targets+=("./cmd/$t"); done
  mkdir -p "$dapr_cp_dir.tmp"
  (cd "$work/dapr" && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/dapr/dapr/pkg/buildinfo.version=$DAPR_RUNTIME_VERSION" \
    -o "$dapr_cp_dir.tmp/" "${targets[@]}")
  rm -rf "$dapr_cp_dir" && mv "$dapr_cp_dir.tmp" "$dapr_cp_dir"
}

wanted=("$@")
((${#wanted[@]})) || wanted=(debs k8s pause coredns registry dapr-cp helm)
for tool in "${wanted[@]}"; do
  case $tool in
    debs) ensure_debs ;;
    k8s) timed kubernetes build_k8s ;;
    pause) timed pause build_pause ;;
    coredns) timed coredns build_coredns ;;
    helm) timed helm build_helm ;;
    registry) timed registry build_registry ;;
    dapr-cp) timed dapr-controlplane build_dapr_cp ;;
    *) log "unknown tool: $tool"; exit 2 ;;
  esac
done

dapr_chart=$(module_dir "github.com/dapr/dapr@v$DAPR_RUNTIME_VERSION")/charts/dapr
printf 'K8S_BIN=%q\nPAUSE=%q\nCOREDNS=%q\nHELM=%q\nREGISTRY=%q\nDAPR_CP_BIN=%q\nDAPR_CHART=%q\n' \
  "$k8s_dir" "$pause_bin" "$coredns_bin" "$helm_bin" "$registry_bin" "$dapr_cp_dir" "$dapr_chart"
printf 'ETCD=%q\nCONTAINERD=%q\nCTR=%q\nRUNC=%q\nCNI_BIN=%q\n' \
  "$(command -v etcd || true)" "$(command -v containerd || true)" "$(command -v ctr || true)" \
  "$(command -v runc || true)" /usr/lib/cni
