"""A real single-node Kubernetes cluster with Dapr on this machine: `make cluster-up/down`.

    python tools/cluster.py up      # idempotent; prints the kubeconfig and context
    python tools/cluster.py down    # stops everything it started, restores the host
    python tools/cluster.py status
    python tools/cluster.py env     # shell assignments (KUBECONFIG=...) for eval

The node is this machine: its own containerd (CRI on), runc, the bridge CNI plugin, etcd on
loopback, the control plane and a kubelet as plain processes, kube-proxy in iptables mode,
CoreDNS as a Deployment, a local image registry announced to Tilt (KEP-1755), and Dapr's
control plane installed from the chart in the pinned dapr module. Every binary comes from
scripts/ensure-cluster-tools.sh (built once into the cache) or Debian packages.

Cluster addresses live only on the two bridges this script creates (the node address on
NODE_BRIDGE, pods behind POD_BRIDGE); traffic goes nowhere but loopback and those. Before
changing the host, `up` records every setting it will touch (sysctls, iptables rules, links,
directories outside its own) in host-state.json; `down` puts them back and removes the rest,
each step whatever happened to the ones before (tools/host_state.py runs them), and lists what
failed (exit status 1) or was left (a missing command: what, and how to remove it by hand).
Needs root (Linux only).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import hashlib
import io
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

# host_state.py (the teardown's step runner) lies beside this file: found when this runs as
# a script, and also when a test loads this file by its path. mypy, run on this directory
# from the repository root, knows it as tools.host_state.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
if TYPE_CHECKING:
    from tools import host_state
else:
    import host_state

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(
    os.environ.get("TASK_PLATFORM_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "task-platform"
)
BASE = Path(os.environ.get("TASK_PLATFORM_CLUSTER_DIR") or CACHE / "cluster")
RUN = BASE / "run"  # wiped at `down`: data of etcd, containerd, kubelet; pidfiles; sockets
PKI = BASE / "pki"  # kept: certificates stay valid for a year, kubeconfig stays stable
REGISTRY_DATA = BASE / "registry"  # kept: images pushed by Tilt survive a restart
LOGS = BASE / "logs"  # kept until the next `up`, to read after a failure
HOST_STATE = BASE / "host-state.json"
KUBECONFIG = BASE / "kubeconfig"

CONTEXT = "task-platform-local"
NODE_NAME = "task-platform-node"
NODE_BRIDGE = "tpnode0"
NODE_IP = "10.77.0.1"
POD_BRIDGE = "tpcni0"
POD_CIDR = "10.88.0.0/16"
POD_GATEWAY = "10.88.0.1"
SERVICE_CIDR = "10.96.0.0/16"
API_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
API_PORT = 6443
API_URL = f"https://{NODE_IP}:{API_PORT}"
ETCD_CLIENT = "127.0.0.1:12379"
ETCD_PEER = "127.0.0.1:12380"
REGISTRY_LISTEN = "127.0.0.1:5000"
REGISTRY_HOST = "localhost:5000"  # the name images carry, for Tilt and for containerd
CNI_NETWORK = "task-platform-pods"
RULE_COMMENT = "task-platform-cluster"
NETNS_DIR = Path("/run/netns")
CONTAINER_LOGS = Path("/var/log/containers")  # the kubelet's symlinks; path is fixed
CNI_CACHE = Path("/var/lib/cni")  # libcni's cache; path is fixed in containerd 1.6
KUBELET_FIXED_DIR = Path("/var/lib/kubelet")  # device-plugins socket; fixed path
CONTAINERD_SHIM_SOCKETS = Path("/run/containerd")  # containerd 1.6 shims' sockets; fixed
CGROUP_ROOT = Path("/sys/fs/cgroup")
# Persistent volumes: a default StorageClass and this many pre-made hostPath volumes under
# RUN (wiped at `down`), bound on first use. Writable by any uid (fsGroup does not apply to
# hostPath). A volume whose claim is deleted is not reused (Retain) until the next `up`.
VOLUMES = 12
STORAGE_CLASS = "standard"

# Kernel settings the kubelet, kube-proxy and the bridge plugin may change.
SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.route_localnet",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
)

# Daemons in start order; `down` stops them in reverse.
DAEMONS = (
    "registry",
    "etcd",
    "containerd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
)


def log(message: str) -> None:
    print(f"cluster: {message}", file=sys.stderr, flush=True)


class ClusterError(Exception):
    pass


# --- processes -------------------------------------------------------------------------


def run(
    argv: Sequence[str | Path],
    *,
    check: bool = True,
    input_text: str | None = None,
    env: dict[str, str] | None = None,
    quiet: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; its output is returned (stderr shown unless quiet)."""
    args = [str(a) for a in argv]
    result = subprocess.run(
        args,
        input=input_text,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if check and result.returncode != 0:
        if not quiet:
            sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise ClusterError(f"failed ({result.returncode}): {shlex.join(args)}")
    return result


def proc_start_time(pid: int) -> str | None:
    """The start time of a live process (field 22 of /proc/PID/stat); None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def pidfile(name: str) -> Path:
    return RUN / "pids" / f"{name}.json"


def owned_pid(name: str) -> int | None:
    """The pid of a daemon this script started and that still runs, else None.

    The pidfile holds the pid and the process's start time: a recycled pid does not match.
    """
    try:
        record = json.loads(pidfile(name).read_text())
    except (OSError, ValueError):
        return None
    pid = int(record["pid"])
    if proc_start_time(pid) != record["start"]:
        return None
    return pid


def start_daemon(name: str, argv: Sequence[str | Path], env: dict[str, str] | None = None) -> None:
    if owned_pid(name) is not None:
        return
    LOGS.mkdir(parents=True, exist_ok=True)
    pidfile(name).parent.mkdir(parents=True, exist_ok=True)
    with (LOGS / f"{name}.log").open("ab") as out:
        process = subprocess.Popen(
            [str(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, which `down` signals
            env=env,
        )
    start = proc_start_time(process.pid)
    pidfile(name).write_text(json.dumps({"pid": process.pid, "start": start, "argv": str(argv[0])}))


def stop_daemon(name: str, timeout: float = 20.0) -> None:
    pid = owned_pid(name)
    if pid is None:
        pidfile(name).unlink(missing_ok=True)
        return
    log(f"stopping {name} (pid {pid})")
    start = proc_start_time(pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc_start_time(pid) == start:
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # the group: nothing it forked stays behind
    while proc_start_time(pid) == start:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    pidfile(name).unlink(missing_ok=True)


def wait_for(what: str, check: Callable[[], bool], timeout: float, daemon: str = "") -> None:
    deadline = time.monotonic() + timeout
    while True:
        if daemon and owned_pid(daemon) is None:
            tail = (LOGS / f"{daemon}.log").read_text(errors="replace")[-3000:]
            raise ClusterError(f"{daemon} exited; the end of {LOGS / daemon}.log:\n{tail}")
        with contextlib.suppress(Exception):
            if check():
                return
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


# --- tools -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Tools:
    k8s_bin: Path
    pause: Path
    coredns: Path
    helm: Path
    registry: Path
    dapr_cp_bin: Path
    dapr_chart: Path
    daprd: Path
    etcd: Path
    containerd: Path
    ctr: Path
    cni_bin: Path

    def k8s(self, name: str) -> Path:
        return self.k8s_bin / name

    def save(self) -> None:
        write_json(RUN / "tools.json", {k: str(v) for k, v in dataclasses.asdict(self).items()})

    @classmethod
    def saved(cls) -> Tools | None:
        """The tools the running cluster was started with (`down` never builds anything)."""
        try:
            values = json.loads((RUN / "tools.json").read_text())
            return cls(**{k: Path(v) for k, v in values.items()})
        except (OSError, ValueError, TypeError):
            return None


def ensure_tools() -> Tools:
    """Build or locate everything (scripts/ensure-cluster-tools.sh, scripts/ensure-dapr.sh)."""
    out = subprocess.run(
        [str(REPO / "scripts/ensure-cluster-tools.sh")],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise ClusterError("scripts/ensure-cluster-tools.sh failed (see above)")
    values: dict[str, str] = {}
    for line in out.stdout.splitlines():
        key, _, value = line.partition("=")
        parts = shlex.split(value)
        values[key] = parts[0] if parts else ""
    # Stock daprd: the control plane's default sidecar image (daprio/daprd). The project's
    # own daprd reaches the cluster as an image Tilt builds (third_party/dapr/Dockerfile).
    dapr = subprocess.run(
        [str(REPO / "scripts/ensure-dapr.sh"), "stock"],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if dapr.returncode != 0:
        raise ClusterError("scripts/ensure-dapr.sh failed (see above)")
    for key in ("ETCD", "CONTAINERD", "CTR"):
        if not values.get(key):
            raise ClusterError(f"{key.lower()} is missing (Debian package); see above")
    return Tools(
        k8s_bin=Path(values["K8S_BIN"]),
        pause=Path(values["PAUSE"]),
        coredns=Path(values["COREDNS"]),
        helm=Path(values["HELM"]),
        registry=Path(values["REGISTRY"]),
        dapr_cp_bin=Path(values["DAPR_CP_BIN"]),
        dapr_chart=Path(values["DAPR_CHART"]),
        daprd=Path(dapr.stdout.strip()) / ".dapr/bin/daprd",
        etcd=Path(values["ETCD"]),
        containerd=Path(values["CONTAINERD"]),
        ctr=Path(values["CTR"]),
        cni_bin=Path(values["CNI_BIN"]),
    )


def versions() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / "versions.env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            pins[key.strip()] = value.strip()
    return pins


# --- host state ------------------------------------------------------------------------


def sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctls() -> dict[str, str]:
    values: dict[str, str] = {}
    for name in SYSCTLS:
        with contextlib.suppress(OSError):
            values[name] = sysctl_path(name).read_text().strip()
    return values


def write_sysctl(name: str, value: str) -> None:
    sysctl_path(name).write_text(value + "\n")


def links() -> list[str]:
    return sorted(p.name for p in Path("/sys/class/net").iterdir())


def iptables_save(family: int) -> str:
    tool = "iptables-save" if family == 4 else "ip6tables-save"
    if shutil.which(tool) is None:
        return ""
    return run([tool], quiet=True).stdout


def normalized_rules(save: str) -> list[str]:
    """iptables-save output without comments and counters: what to compare."""
    rules = []
    for line in save.splitlines():
        if line.startswith("#"):
            continue
        if line.startswith(":"):
            line = line.split(" ")[0] + " " + line.split(" ")[1]
        rules.append(line)
    return rules


def cgroup_dirs() -> list[str]:
    found = []
    with contextlib.suppress(OSError):
        for controller in CGROUP_ROOT.iterdir():
            if (controller / "kubepods").exists():
                found.append(str(controller / "kubepods"))
    return found


def record_host_state() -> None:
    """Write down every host setting `up` may change, once (a half-done `up` keeps it)."""
    if HOST_STATE.exists():
        return
    state = {
        "sysctls": read_sysctls(),
        "iptables": iptables_save(4),
        "ip6tables": iptables_save(6),
        "links": links(),
        "netns": sorted(p.name for p in NETNS_DIR.iterdir()) if NETNS_DIR.exists() else [],
        "container_logs_dir_existed": CONTAINER_LOGS.exists(),
        "cni_cache_existed": CNI_CACHE.exists(),
        "kubelet_dir_existed": KUBELET_FIXED_DIR.exists(),
        "run_containerd_existed": CONTAINERD_SHIM_SOCKETS.exists(),
        "netns_dir_existed": NETNS_DIR.exists(),
        "cgroups": cgroup_dirs(),
    }
    BASE.mkdir(parents=True, exist_ok=True)
    HOST_STATE.write_text(json.dumps(state, indent=1))


def load_host_state() -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads(HOST_STATE.read_text())
    except (OSError, ValueError):
        return {}
    return state


# --- certificates and kubeconfigs ------------------------------------------------------

CLIENT_CERTS = {
    # file stem: (common name, organization)
    "admin": ("task-platform-admin", "system:masters"),
    "controller-manager": ("system:kube-controller-manager", ""),
    "scheduler": ("system:kube-scheduler", ""),
    "kubelet": (f"system:node:{NODE_NAME}", "system:nodes"),
    "proxy": ("system:kube-proxy", ""),
    "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", "system:masters"),
}


def openssl(*args: str | Path) -> None:
    run(["openssl", *args], quiet=False)


def sign(stem: str, subject: str, usage: str, san: str = "") -> None:
    key, csr, crt = PKI / f"{stem}.key", PKI / f"{stem}.csr", PKI / f"{stem}.crt"
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
            "-subj", subject)  # fmt: skip
    ext = PKI / f"{stem}.ext"
    lines = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={usage}",
    ]
    if san:
        lines.append(f"subjectAltName={san}")
    ext.write_text("\n".join(lines) + "\n")
    openssl("x509", "-req", "-in", csr, "-CA", PKI / "ca.crt", "-CAkey", PKI / "ca.key",
            "-CAcreateserial", "-days", "365", "-out", crt, "-extfile", ext)  # fmt: skip
    csr.unlink()
    ext.unlink()
    key.chmod(0o600)


def ensure_pki() -> None:
    if (PKI / "done").exists():
        return
    log("generating certificates and service-account keys")
    shutil.rmtree(PKI, ignore_errors=True)
    PKI.mkdir(parents=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
            "-keyout", PKI / "ca.key", "-out", PKI / "ca.crt",
            "-subj", "/CN=task-platform-local-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature")  # fmt: skip
    san = ",".join(
        [
            f"IP:{NODE_IP}",
            f"IP:{API_SERVICE_IP}",
            "IP:127.0.0.1",
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
        ]
    )
    sign("apiserver", "/CN=kube-apiserver", "serverAuth", san)
    for stem, (cn, org) in CLIENT_CERTS.items():
        sign(stem, (f"/O={org}" if org else "") + f"/CN={cn}", "clientAuth")
    openssl("genrsa", "-out", PKI / "sa.key", "2048")
    openssl("rsa", "-in", PKI / "sa.key", "-pubout", "-out", PKI / "sa.pub")
    (PKI / "done").write_text("")


def kubeconfig(stem: str, *, server: str = API_URL, context: str = CONTEXT) -> dict[str, Any]:
    """A kubeconfig with the certificates inline (it can be copied anywhere)."""

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    user = f"{context}-{stem}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": context,
                "cluster": {"server": server, "certificate-authority-data": b64(PKI / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(PKI / f"{stem}.crt"),
                    "client-key-data": b64(PKI / f"{stem}.key"),
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": user}}],
        "current-context": context,
    }


def write_json(path: Path, data: object, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    path.chmod(mode)
    return path


# --- images ----------------------------------------------------------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class Image:
    """A FROM-scratch image: one binary at /<name>, run as `user`."""

    repository: str  # without the registry host
    tag: str
    binary: Path
    entrypoint: str
    user: str = "65532:65532"

    @property
    def ref(self) -> str:
        return f"{REGISTRY_HOST}/{self.repository}:{self.tag}"


def layer_for(binary: Path, name: str) -> bytes:
    """An uncompressed, reproducible tar layer holding one executable."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("etc", "tmp"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        info = tarfile.TarInfo(name)
        data = binary.read_bytes()
        info.size = len(data)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def registry_request(
    method: str, path: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str]]:
    url = path if path.startswith("http") else f"http://{REGISTRY_LISTEN}{path}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - loopback
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def push_blob(repository: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    status, _ = registry_request("HEAD", f"/v2/{repository}/blobs/{digest}")
    if status == 200:
        return digest
    status, headers = registry_request("POST", f"/v2/{repository}/blobs/uploads/")
    if status != 202:
        raise ClusterError(f"registry refused an upload to {repository}: HTTP {status}")
    location = headers["Location"]
    if location.startswith("/"):
        location = f"http://{REGISTRY_LISTEN}{location}"
    separator = "&" if "?" in location else "?"
    status, _ = registry_request(
        "PUT",
        f"{location}{separator}digest={digest}",
        data,
        {"Content-Type": "application/octet-stream"},
    )
    if status != 201:
        raise ClusterError(f"registry refused a blob for {repository}: HTTP {status}")
    return digest


def push_image(image: Image) -> None:
    layer = layer_for(image.binary, image.entrypoint.lstrip("/"))
    layer_digest = push_blob(image.repository, layer)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": [image.entrypoint], "User": image.user, "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        },
        sort_keys=True,
    ).encode()
    config_digest = push_blob(image.repository, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        },
        sort_keys=True,
    ).encode()
    status, _ = registry_request(
        "PUT", f"/v2/{image.repository}/manifests/{image.tag}", manifest,
        {"Content-Type": OCI_MANIFEST},
    )  # fmt: skip
    if status != 201:
        raise ClusterError(f"registry refused the manifest of {image.ref}: HTTP {status}")


def cluster_images(tools: Tools) -> list[Image]:
    pins = versions()
    dapr = pins["DAPR_RUNTIME_VERSION"]
    images = [
        Image("task-platform/pause", "3.10", tools.pause, "/pause", user="65535:65535"),
        Image("task-platform/coredns", pins["COREDNS_VERSION"], tools.coredns, "/coredns", "0:0"),
        Image("dapr/daprd", dapr, tools.daprd, "/daprd"),
    ]
    for name in ("operator", "injector", "sentry", "placement"):
        images.append(Image(f"dapr/{name}", dapr, tools.dapr_cp_bin / name, f"/{name}"))
    return images


def manifest_images() -> dict[str, bool]:
    """Images the manifests run that Tilt does not build (Tilt builds task-platform/*):
    k8s/'s and those of each overlay in k8s-overlays/, with whether this run needs them:
    k8s/'s always, an overlay's when BACKEND names it (make e2e-k8s BACKEND=postgres-kafka)."""
    backend = os.environ.get("BACKEND") or "redis"
    found: dict[str, bool] = {}
    for directory in [REPO / "k8s", *sorted((REPO / "k8s-overlays").glob("*/"))]:
        needed = directory.name in ("k8s", backend)
        for path in sorted(directory.rglob("*.yaml")):
            for line in path.read_text().splitlines():
                match = re.match(r"\s*(?:-\s+)?image:\s*[\"']?([^\"'\s]+)", line)
                if match and not match.group(1).startswith("task-platform/"):
                    found[match.group(1)] = found.get(match.group(1), False) or needed
    return found


def mirror_name(image: str) -> str | None:
    """Where a Docker Hub image lives in the local registry (None: another registry)."""
    first, _, rest = image.partition("/")
    if not rest:
        return f"library/{image}"
    if "." in first or ":" in first or first == "localhost":
        return None if first != "docker.io" else mirror_name(rest)
    return image


def preload_images() -> None:
    """Copy the Docker Hub images the manifests need (redis, jaeger; postgres and kafka for
    BACKEND=postgres-kafka) from the Docker engine, when one answers (scripts/docker-up.sh
    exports DOCKER and DOCKER_HOST), into the local registry, where containerd finds them.
    Pushed every time (cheap: layers already there are skipped), so a rebuilt stand-in
    replaces the old one. Another profile's images are pushed when the engine has them."""
    docker = os.environ.get("DOCKER") or "/usr/bin/docker"
    accept = ", ".join(
        [
            OCI_MANIFEST,
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        ]
    )
    for image, needed in sorted(manifest_images().items()):
        name = mirror_name(image)
        if name is None:
            continue
        target = f"{REGISTRY_HOST}/{name}"
        engine_has_it = (
            Path(docker).is_file()
            and run([docker, "image", "inspect", image], check=False, quiet=True).returncode == 0
        )
        if engine_has_it:
            run([docker, "tag", image, target])
            pushed = run([docker, "push", target], check=False)
            if pushed.returncode == 0:
                log(f"copied {image} from the Docker engine into {target}")
                continue
            log(f"note: `docker push {target}` failed: {pushed.stderr.strip()[-300:]}")
        if not needed:
            continue
        repository, _, tag = name.rpartition(":")
        status, _ = registry_request(
            "HEAD", f"/v2/{repository}/manifests/{tag}", headers={"Accept": accept}
        )
        if status != 200:
            log(
                f"note: {image} is neither in the local registry nor in a Docker engine; "
                f"pods using it will not start until it is pushed to {target}"
            )


# --- configuration files ---------------------------------------------------------------


def containerd_socket() -> Path:
    return RUN / "containerd/containerd.sock"


def write_containerd_config(pause_ref: str) -> Path:
    certs = RUN / "containerd/certs.d"
    # Plain HTTP to the local registry, for pull and resolve only. Docker Hub names
    # (redis:7.0.15-alpine in k8s/) resolve there too, and only there: no pull leaves the
    # machine. Put such an image in with `docker tag redis:7.0.15-alpine
    # localhost:5000/library/redis:7.0.15-alpine && docker push ...`.
    for host in (REGISTRY_HOST, "docker.io"):
        hosts = certs / host / "hosts.toml"
        hosts.parent.mkdir(parents=True, exist_ok=True)
        hosts.write_text(
            f'server = "http://{REGISTRY_LISTEN}"\n\n'
            f'[host."http://{REGISTRY_LISTEN}"]\n  capabilities = ["pull", "resolve"]\n'
        )
    config = f"""version = 2
root = "{RUN}/containerd/root"
state = "{RUN}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{containerd_socket()}"
[ttrpc]
  address = "{containerd_socket()}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{RUN}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_ref}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "10010"
  enable_cdi = false
  # This VM withholds CAP_SYS_RESOURCE: without this, every sandbox fails to start
  # (runc cannot set oom_score_adj -998).
  restrict_oom_score_adj = true
  # Pods' network namespaces under our state directory, not /run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{RUN}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{RUN}/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{certs}"
"""
    path = RUN / "containerd/config.toml"
    path.write_text(config)
    write_json(
        RUN / "cni/net.d/10-task-platform.conflist",
        {
            "cniVersion": "1.0.0",
            "name": CNI_NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": POD_BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(RUN / "cni/ipam"),
                        "ranges": [[{"subnet": POD_CIDR, "gateway": POD_GATEWAY}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
    )
    return path


def write_kubelet_config() -> Path:
    return write_json(
        RUN / "kubelet.json",
        {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": NODE_IP,
            "port": 10250,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "readOnlyPort": 0,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(PKI / "ca.crt")},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "cgroupDriver": "cgroupfs",
            "containerRuntimeEndpoint": f"unix://{containerd_socket()}",
            "clusterDomain": "cluster.local",
            "clusterDNS": [DNS_SERVICE_IP],
            "resolvConf": "",  # pods never get the host's resolvers: no DNS leaves the node
            "failSwapOn": False,
            "protectKernelDefaults": False,
            "makeIPTablesUtilChains": False,
            "enforceNodeAllocatable": [],
            "cgroupsPerQOS": True,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "podLogsDir": str(RUN / "pod-logs"),
            "serializeImagePulls": False,
            "maxPods": 60,
        },
    )


def write_proxy_config() -> Path:
    return write_json(
        RUN / "proxy.json",
        {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(RUN / "proxy.kubeconfig")},
            "clusterCIDR": POD_CIDR,
            "nodePortAddresses": [f"{NODE_IP}/32"],
            "bindAddress": NODE_IP,
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            "iptables": {"localhostNodePorts": False},
            # Leave the host's conntrack settings alone.
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
        },
    )


def volume_objects() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Retain",
        }
    ]
    for number in range(VOLUMES):
        items.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"task-platform-pv-{number:02d}"},
                "spec": {
                    "storageClassName": STORAGE_CLASS,
                    "capacity": {"storage": "20Gi"},
                    "accessModes": ["ReadWriteOnce", "ReadWriteMany"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "hostPath": {
                        "path": str(RUN / f"volumes/pv-{number:02d}"),
                        "type": "Directory",
                    },
                },
            }
        )
    return items


def make_volume_dirs() -> None:
    for number in range(VOLUMES):
        directory = RUN / f"volumes/pv-{number:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o777)  # a scratch volume any pod's uid may write


def bootstrap_objects(coredns_ref: str) -> dict[str, Any]:
    """CoreDNS (cluster names only: it forwards nothing), the registry announcement and
    the default StorageClass with its volumes."""
    labels = {"k8s-app": "kube-dns"}
    corefile = """.:53 {
    errors
    health :8080
    ready :8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    cache 30
    loadbalance
}
"""
    registry_hosting = (
        f'host: "{REGISTRY_HOST}"\n'
        f'hostFromContainerRuntime: "{REGISTRY_HOST}"\n'
        'help: "https://github.com/kubernetes/enhancements/tree/master/keps/sig-cluster-lifecycle/generic/1755-communicating-a-local-registry"\n'
    )
    meta = {"namespace": "kube-system"}
    items: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "local-registry-hosting", "namespace": "kube-public"},
            "data": {"localRegistryHosting.v1": registry_hosting},
        },
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", **meta}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:coredns",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "coredns", **meta},
            "data": {"Corefile": corefile},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "coredns", "labels": labels, **meta},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "priorityClassName": "system-cluster-critical",
                        "dnsPolicy": "Default",
                        "containers": [
                            {
                                "name": "coredns",
                                "image": coredns_ref,
                                "imagePullPolicy": "IfNotPresent",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [
                                    {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                    {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                                ],
                                "readinessProbe": {
                                    "httpGet": {"path": "/ready", "port": 8181},
                                    "periodSeconds": 2,
                                },
                                "livenessProbe": {
                                    "httpGet": {"path": "/health", "port": 8080},
                                    "initialDelaySeconds": 10,
                                },
                                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {
                                        "add": ["NET_BIND_SERVICE"],
                                        "drop": ["ALL"],
                                    },
                                },
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "labels": labels, **meta},
            "spec": {
                "clusterIP": DNS_SERVICE_IP,
                "selector": labels,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                ],
            },
        },
    ]
    return {"apiVersion": "v1", "kind": "List", "items": items + volume_objects()}


# --- health ----------------------------------------------------------------------------


def api_context() -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
    context.load_cert_chain(str(PKI / "admin.crt"), str(PKI / "admin.key"))
    return context


def api_get(path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    request = urllib.request.Request(API_URL + path)  # noqa: S310 - our own API server
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=api_context()) as resp:  # noqa: S310
            return resp.status, resp.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - loopback only
        status: int = response.status
        return 200 <= status < 300


def node_ready() -> bool:
    status, body = api_get(f"/api/v1/nodes/{NODE_NAME}")
    if status != 200:
        return False
    conditions = json.loads(body)["status"].get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def healthy() -> bool:
    if any(owned_pid(name) is None for name in DAEMONS) or not KUBECONFIG.exists():
        return False
    try:
        status, _ = api_get("/readyz")
        return status == 200 and node_ready() and http_ok(f"http://{REGISTRY_LISTEN}/v2/")
    except OSError:
        return False


# --- up --------------------------------------------------------------------------------


def kubectl(tools: Tools, *args: str, input_text: str | None = None) -> str:
    return run(
        [tools.k8s("kubectl"), "--kubeconfig", KUBECONFIG, "--context", CONTEXT, *args],
        input_text=input_text,
    ).stdout


def check_addresses_free() -> None:
    """Our ranges must not overlap a route of the host's (ours excepted)."""
    routes = json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout)
    ours = {NODE_BRIDGE, POD_BRIDGE}
    for route in routes:
        dst = route.get("dst", "")
        if route.get("dev") in ours or dst in ("", "default") or route.get("type") == "broadcast":
            continue
        network = ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False)
        for cidr in (f"{NODE_IP}/32", POD_CIDR, SERVICE_CIDR):
            if network.overlaps(ipaddress.ip_network(cidr)) and not network.is_loopback:
                raise ClusterError(
                    f"{cidr} overlaps the host's route {dst} dev {route.get('dev')}: "
                    "change NODE_IP/POD_CIDR/SERVICE_CIDR in tools/cluster.py"
                )


def setup_network() -> None:
    check_addresses_free()
    if not Path(f"/sys/class/net/{NODE_BRIDGE}").exists():
        run(["ip", "link", "add", NODE_BRIDGE, "type", "bridge"])
    addresses = run(["ip", "-o", "-4", "addr", "show", "dev", NODE_BRIDGE]).stdout
    if f" {NODE_IP}/" not in addresses:
        run(["ip", "addr", "add", f"{NODE_IP}/32", "dev", NODE_BRIDGE])
    run(["ip", "link", "set", NODE_BRIDGE, "up"])
    # Service addresses that kube-proxy does not (yet) translate stay on our bridge instead
    # of following the default route out of the machine.
    run(["ip", "route", "replace", SERVICE_CIDR, "dev", NODE_BRIDGE, "src", NODE_IP])
    if not sysctl_path("net.bridge.bridge-nf-call-iptables").exists():
        run(["modprobe", "br_netfilter"], check=False)
    write_sysctl("net.ipv4.ip_forward", "1")
    # dockerd sets the FORWARD policy to DROP: let pod traffic through our bridge.
    for direction in ("-i", "-o"):
        rule = ["FORWARD", direction, POD_BRIDGE, "-m", "comment", "--comment", RULE_COMMENT,
                "-j", "ACCEPT"]  # fmt: skip
        if run(["iptables", "-C", *rule], check=False, quiet=True).returncode != 0:
            run(["iptables", "-I", *rule])


def up(tools: Tools) -> None:
    started = time.monotonic()
    pins = versions()
    if healthy():
        log("already up and healthy")
        preload_images()
        print_info()
        return
    if any(owned_pid(name) is not None for name in DAEMONS) or mounts_under(BASE):
        log("partly up: taking it down first")
        if down(Tools.saved()).failures:
            raise ClusterError("taking the partial cluster down failed (see above)")
    record_host_state()
    for stale in (RUN, LOGS):
        shutil.rmtree(stale, ignore_errors=True)  # nothing is mounted there (checked above)
    RUN.mkdir(parents=True)
    tools.save()
    ensure_pki()
    setup_network()

    # The registry first: containerd pulls every cluster image from it.
    REGISTRY_DATA.mkdir(parents=True, exist_ok=True)
    registry_config = write_json(
        RUN / "registry.json",
        {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {
                "filesystem": {"rootdirectory": str(REGISTRY_DATA)},
                "delete": {"enabled": True},
            },
            "http": {"addr": REGISTRY_LISTEN},
        },
    )
    registry_env = {"PATH": os.environ.get("PATH", ""), "OTEL_TRACES_EXPORTER": "none"}
    start_daemon("registry", [tools.registry, "serve", registry_config], env=registry_env)
    wait_for("the registry", lambda: http_ok(f"http://{REGISTRY_LISTEN}/v2/"), 30, "registry")
    images = cluster_images(tools)
    for image in images:
        push_image(image)
    preload_images()
    log(f"images pushed to {REGISTRY_HOST} ({time.monotonic() - started:.0f} s)")

    start_daemon("etcd", [
        tools.etcd, "--name", NODE_NAME, "--data-dir", RUN / "etcd",
        "--listen-client-urls", f"http://{ETCD_CLIENT}", "--advertise-client-urls", f"http://{ETCD_CLIENT}",
        "--listen-peer-urls", f"http://{ETCD_PEER}", "--initial-advertise-peer-urls", f"http://{ETCD_PEER}",
        "--initial-cluster", f"{NODE_NAME}=http://{ETCD_PEER}",
    ])  # fmt: skip
    containerd_config = write_containerd_config(images[0].ref)
    start_daemon("containerd", [tools.containerd, "--config", containerd_config])
    wait_for("etcd", lambda: http_ok(f"http://{ETCD_CLIENT}/health"), 60, "etcd")
    start_daemon("kube-apiserver", [
        tools.k8s("kube-apiserver"),
        f"--etcd-servers=http://{ETCD_CLIENT}",
        f"--bind-address={NODE_IP}", f"--advertise-address={NODE_IP}", f"--secure-port={API_PORT}",
        f"--tls-cert-file={PKI}/apiserver.crt", f"--tls-private-key-file={PKI}/apiserver.key",
        f"--client-ca-file={PKI}/ca.crt",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={PKI}/sa.pub",
        f"--service-account-signing-key-file={PKI}/sa.key",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true",
        f"--kubelet-client-certificate={PKI}/apiserver-kubelet-client.crt",
        f"--kubelet-client-key={PKI}/apiserver-kubelet-client.key",
        "--kubelet-preferred-address-types=InternalIP",
        "--profiling=false",
    ])  # fmt: skip
    write_json(KUBECONFIG, kubeconfig("admin"), 0o600)
    for stem in ("controller-manager", "scheduler", "kubelet", "proxy"):
        write_json(RUN / f"{stem}.kubeconfig", kubeconfig(stem), 0o600)
    wait_for("the API server", lambda: api_get("/readyz")[0] == 200, 120, "kube-apiserver")
    wait_for("containerd", lambda: containerd_socket().exists(), 30, "containerd")
    log(f"API server ready ({time.monotonic() - started:.0f} s)")

    start_daemon("kube-controller-manager", [
        tools.k8s("kube-controller-manager"),
        f"--kubeconfig={RUN}/controller-manager.kubeconfig",
        f"--authentication-kubeconfig={RUN}/controller-manager.kubeconfig",
        f"--authorization-kubeconfig={RUN}/controller-manager.kubeconfig",
        "--bind-address=127.0.0.1", "--leader-elect=false",
        f"--service-account-private-key-file={PKI}/sa.key", f"--root-ca-file={PKI}/ca.crt",
        f"--cluster-signing-cert-file={PKI}/ca.crt", f"--cluster-signing-key-file={PKI}/ca.key",
        "--use-service-account-credentials=true",
        f"--service-cluster-ip-range={SERVICE_CIDR}", "--allocate-node-cidrs=false",
    ])  # fmt: skip
    start_daemon("kube-scheduler", [
        tools.k8s("kube-scheduler"),
        f"--kubeconfig={RUN}/scheduler.kubeconfig",
        f"--authentication-kubeconfig={RUN}/scheduler.kubeconfig",
        f"--authorization-kubeconfig={RUN}/scheduler.kubeconfig",
        "--bind-address=127.0.0.1", "--leader-elect=false",
    ])  # fmt: skip
    start_daemon("kubelet", [
        tools.k8s("kubelet"),
        f"--config={write_kubelet_config()}",
        f"--kubeconfig={RUN}/kubelet.kubeconfig",
        f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_IP}",
        f"--root-dir={RUN}/kubelet", f"--cert-dir={RUN}/kubelet/pki",
    ])  # fmt: skip
    start_daemon("kube-proxy", [
        tools.k8s("kube-proxy"), f"--config={write_proxy_config()}",
        f"--hostname-override={NODE_NAME}",
    ])  # fmt: skip

    coredns_ref = next(i.ref for i in images if i.repository == "task-platform/coredns")
    make_volume_dirs()
    kubectl(tools, "apply", "-f", "-", input_text=json.dumps(bootstrap_objects(coredns_ref)))
    wait_for("the node to be Ready", node_ready, 120, "kubelet")
    log(f"node Ready ({time.monotonic() - started:.0f} s)")
    kubectl(tools, "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=180s")
    log(f"CoreDNS ready ({time.monotonic() - started:.0f} s)")

    dapr = pins["DAPR_RUNTIME_VERSION"]
    helm_env = {
        **os.environ,
        **{f"HELM_{d}_HOME": str(RUN / "helm" / d.lower()) for d in ("CACHE", "CONFIG", "DATA")},
    }
    run([
        tools.helm, "upgrade", "--install", "dapr", tools.dapr_chart,
        "--kubeconfig", KUBECONFIG, "--kube-context", CONTEXT,
        "--namespace", "dapr-system", "--create-namespace",
        "--set", f"global.registry={REGISTRY_HOST}/dapr", "--set", f"global.tag={dapr}",
        "--set", "global.scheduler.enabled=false", "--set", "global.ha.enabled=false",
        "--wait", "--timeout", "5m",
    ], env=helm_env)  # fmt: skip
    log(f"Dapr {dapr} control plane ready ({time.monotonic() - started:.0f} s)")
    log(f"up in {time.monotonic() - started:.0f} s")
    print_info()


def print_info() -> None:
    print(
        f"cluster: kubeconfig {KUBECONFIG}, context {CONTEXT}, API {API_URL}, "
        f"registry {REGISTRY_HOST}\n"
        f"  export KUBECONFIG={shlex.quote(str(KUBECONFIG))}   "
        f'# or: eval "$(python tools/cluster.py env)"',
        file=sys.stderr,
    )
    print(env_text(), end="")


def env_text() -> str:
    text = (
        f"KUBECONFIG={shlex.quote(str(KUBECONFIG))}\n"
        f"KUBE_CONTEXT={CONTEXT}\n"
        f"TASK_PLATFORM_REGISTRY={REGISTRY_HOST}\n"
    )
    tools = Tools.saved()
    if tools is not None:
        text += f"K8S_BIN={shlex.quote(str(tools.k8s_bin))}\nHELM={shlex.quote(str(tools.helm))}\n"
    return text + "export KUBECONFIG\n"


# --- down ------------------------------------------------------------------------------


def mounts_under(*roots: Path) -> list[str]:
    """Mount points at or below the given directories, deepest first."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split(" ")[4].encode().decode("unicode_escape")
        if any(point == str(r) or point.startswith(f"{r}/") for r in roots):
            found.append(point)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def stop_pods(tools: Tools) -> None:
    """Delete every pod while the kubelet still runs, so it tears their networks down."""
    if owned_pid("kubelet") is None or owned_pid("kube-apiserver") is None:
        return
    for name in ("kube-controller-manager", "kube-scheduler"):
        stop_daemon(name)  # nothing recreates the pods
    with contextlib.suppress(ClusterError):
        kubectl(tools, "delete", "pods", "--all", "--all-namespaces", "--force",
                "--grace-period=0", "--wait=false")  # fmt: skip

    def no_sandboxes() -> bool:
        listed = run(
            [tools.ctr, "--address", containerd_socket(), "-n", "k8s.io", "tasks", "ls", "-q"]
        )
        return not listed.stdout.strip()

    with contextlib.suppress(ClusterError):
        wait_for("the pods to stop", no_sandboxes, 60)


def kill_tasks(tools: Tools) -> None:
    """Whatever still runs in our containerd: kill it and delete the tasks."""
    if owned_pid("containerd") is None:
        return
    ctr: list[str | Path] = [tools.ctr, "--address", containerd_socket(), "-n", "k8s.io"]
    tasks = run([*ctr, "tasks", "ls", "-q"], check=False, quiet=True).stdout.split()
    for task in tasks:
        run([*ctr, "tasks", "kill", "-s", "SIGKILL", task], check=False, quiet=True)
    for task in tasks:
        for _ in range(20):
            if run([*ctr, "tasks", "delete", task], check=False, quiet=True).returncode == 0:
                break
            time.sleep(0.25)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def kill_orphan_shims() -> None:
    """containerd-shim processes serving our containerd (named by our socket) outlive it:
    kill each one's containers (the init of a PID namespace takes the rest along), then it."""
    address = str(containerd_socket()).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and address in argv:
            shim = int(entry.name)
            log(f"killing leftover shim {shim} and its containers")
            for child in children_of(shim):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(shim, signal.SIGKILL)


def is_cluster_rule(line: str) -> bool:
    """An iptables-save line of kube-proxy, the kubelet, the CNI plugins or ours."""
    if line.startswith((":KUBE-", ":CNI-", "-A KUBE-", "-A CNI-")):
        return True
    if line.startswith("-A ") and any(
        f" {j} {c}-" in line for j in ("-j", "-g") for c in ("KUBE", "CNI")
    ):
        return True
    return line.startswith("-A ") and f"--comment {RULE_COMMENT}" in line


def split_tables(save: str) -> dict[str, list[str]]:
    tables: dict[str, list[str]] = {}
    current = ""
    for line in save.splitlines():
        if line.startswith("*"):
            current = line[1:]
            tables[current] = [line]
        elif current and not line.startswith("#"):
            tables[current].append(line)
    return tables


def cleanup_iptables(family: int, before: str | None, steps: host_state.Steps) -> None:
    """Remove kube-proxy's, the kubelet's, the CNI plugins' and our rules, one by one (a
    table is never rewritten: rules others add meanwhile, e.g. dockerd's, stay). A table
    that only appeared because of them (empty now) is deleted. Each command is a step."""
    tool = "iptables" if family == 4 else "ip6tables"
    if shutil.which(tool) is None:
        return
    for table, lines in split_tables(iptables_save(family)).items():
        chains = [
            line[1:].split()[0] for line in lines if line.startswith(":") and is_cluster_rule(line)
        ]
        commands = [
            [tool, "-w", "-t", table, "-D", *shlex.split(line)[1:]]
            for line in lines
            if line.startswith("-A ") and is_cluster_rule(line) and line.split()[1] not in chains
        ]
        for flag in ("-F", "-X"):  # every chain empty first: they jump to each other
            commands += [[tool, "-w", "-t", table, flag, chain] for chain in chains]
        for argv in commands:
            steps.run(shlex.join(argv), partial(run, argv))
    if before is None:
        return
    nft_family = "ip" if family == 4 else "ip6"
    tables_before = split_tables(before)
    for table, lines in split_tables(iptables_save(family)).items():
        empty = all(
            line.startswith(("*", "COMMIT")) or (line.startswith(":") and " ACCEPT " in line)
            for line in lines
        )
        if table not in tables_before and empty:
            steps.run(
                f"nft delete table {nft_family} {table}",
                partial(delete_nft_table, nft_family, table),
            )


def delete_nft_table(family: str, table: str) -> None:
    nft = host_state.require(
        "nft",
        f'the empty nf_tables table "{family} {table}" that the cluster created',
        f"nft delete table {family} {table}",
    )
    run([nft, "delete", "table", family, table])


def unmount(point: str) -> None:
    if run(["umount", point], check=False, quiet=True).returncode != 0:
        run(["umount", "-l", point])  # detached now, gone once nothing uses it


def remove_mounts(state: dict[str, Any], steps: host_state.Steps) -> None:
    """Mounts the kubelet and containerd made: under our directory, and the pods' network
    namespaces (made by our containerd: any that were not there before `up`)."""
    netns_before = set(state.get("netns", []))
    new_netns = []
    if NETNS_DIR.exists():
        new_netns = [
            p
            for p in NETNS_DIR.iterdir()
            if p.name.startswith("cni-") and p.name not in netns_before
        ]
    for point in mounts_under(BASE, *new_netns):
        steps.run(f"umount {point}", partial(unmount, point))
    for path in new_netns:
        steps.run(f"remove {path}", partial(path.unlink, missing_ok=True))
    if (
        NETNS_DIR.exists()
        and not state.get("netns_dir_existed", True)
        and not any(NETNS_DIR.iterdir())
    ):
        NETNS_DIR.rmdir()


def delete_link(name: str) -> None:
    """A link that went away meanwhile (a veth, with its pod's namespace) is no failure."""
    result = run(["ip", "link", "delete", name], check=False, quiet=True)
    if result.returncode != 0 and Path(f"/sys/class/net/{name}").exists():
        raise ClusterError(f"failed ({result.returncode}): ip link delete {name}: {result.stderr}")


def remove_links(state: dict[str, Any], steps: host_state.Steps) -> None:
    """Veths still on the pod bridge, the pod bridge, the node bridge."""
    links_before = set(state.get("links", []))
    if Path(f"/sys/class/net/{POD_BRIDGE}").exists():
        for port in Path(f"/sys/class/net/{POD_BRIDGE}/brif").iterdir():
            if port.name not in links_before:
                steps.run(f"ip link delete {port.name}", partial(delete_link, port.name))
    for link in (POD_BRIDGE, NODE_BRIDGE):
        if Path(f"/sys/class/net/{link}").exists() and link not in links_before:
            steps.run(f"ip link delete {link}", partial(delete_link, link))


def restore_sysctl(name: str, value: str) -> None:
    path = sysctl_path(name)
    if path.exists() and path.read_text().strip() != value:  # gone: its module was unloaded
        write_sysctl(name, value)


def remove_cgroups(state: dict[str, Any]) -> None:
    """The kubelet's cgroups (cgroup v1: one kubepods tree per controller), deepest first."""
    cgroups_before = set(state.get("cgroups", []))
    for top in cgroup_dirs():
        if top in cgroups_before:
            continue
        for directory in sorted(Path(top).rglob("*"), key=lambda p: -len(p.parts)):
            if directory.is_dir():
                with contextlib.suppress(OSError):
                    directory.rmdir()
        with contextlib.suppress(OSError):
            Path(top).rmdir()


def remove_fixed_paths(state: dict[str, Any]) -> None:
    """Files the kubelet and the CNI plugins keep at fixed paths outside our directory."""
    if CONTAINER_LOGS.exists():
        for entry in CONTAINER_LOGS.iterdir():
            if entry.is_symlink() and str(os.readlink(entry)).startswith(str(RUN)):
                entry.unlink()
        if not state.get("container_logs_dir_existed", True) and not any(CONTAINER_LOGS.iterdir()):
            CONTAINER_LOGS.rmdir()
    if CONTAINERD_SHIM_SOCKETS.exists() and not state.get("run_containerd_existed", True):
        remove_idle_shim_sockets()
    if KUBELET_FIXED_DIR.exists() and not state.get("kubelet_dir_existed", True):
        shutil.rmtree(KUBELET_FIXED_DIR, ignore_errors=True)
    if CNI_CACHE.exists():
        for entry in CNI_CACHE.rglob(f"{CNI_NETWORK}-*"):
            entry.unlink()
        if not state.get("cni_cache_existed", True):
            shutil.rmtree(CNI_CACHE, ignore_errors=True)


def remove_run_dir() -> None:
    still_mounted = mounts_under(BASE)
    if still_mounted:  # removing RUN would delete into them
        raise ClusterError(f"still mounted under {BASE}: {still_mounted}; {RUN} kept")
    shutil.rmtree(RUN, ignore_errors=True)


def down(tools: Tools | None = None) -> host_state.Steps:
    """Stop everything `up` started and put the host back. Each step runs whatever happened
    to the ones before; the result lists what failed and what was left. host-state.json
    stays unless every step succeeded, so that running `down` again retries."""
    steps = host_state.Steps("cluster")
    state = load_host_state()
    if tools is not None:
        steps.run("stop the pods", partial(stop_pods, tools))
    for name in ("kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"):
        steps.run(f"stop {name}", partial(stop_daemon, name))
    if tools is not None:
        steps.run("kill the containers", partial(kill_tasks, tools))
    for name in ("containerd", "kube-apiserver", "etcd", "registry"):
        steps.run(f"stop {name}", partial(stop_daemon, name))
    steps.run("kill leftover shims", kill_orphan_shims)
    steps.run("unmount", partial(remove_mounts, state, steps))
    steps.run("delete links", partial(remove_links, state, steps))
    for family, key in ((4, "iptables"), (6, "ip6tables")):
        steps.run(f"clean up {key}", partial(cleanup_iptables, family, state.get(key), steps))
    for name, value in state.get("sysctls", {}).items():
        steps.run(f"restore {name}", partial(restore_sysctl, name, value))
    steps.run("remove the kubelet's cgroups", partial(remove_cgroups, state))
    steps.run("remove files at fixed paths", partial(remove_fixed_paths, state))
    steps.run(f"remove {RUN}", remove_run_dir)
    steps.run("compare the host with before `up`", partial(report_host_differences, state))
    if steps.all_succeeded:
        HOST_STATE.unlink(missing_ok=True)
        log("down")
    else:
        log(f"{HOST_STATE} stays: `make cluster-down` again retries what was left")
    return steps


def remove_idle_shim_sockets() -> None:
    """/run/containerd appeared with our containerd: remove it unless a socket there still
    answers (another containerd's shim)."""
    for entry in CONTAINERD_SHIM_SOCKETS.rglob("*"):
        if entry.is_socket():
            with socket.socket(socket.AF_UNIX) as probe, contextlib.suppress(OSError):
                probe.connect(str(entry))
                return
    shutil.rmtree(CONTAINERD_SHIM_SOCKETS, ignore_errors=True)


def report_host_differences(state: dict[str, Any]) -> None:
    if not state:
        return
    now = read_sysctls()
    for name, value in state.get("sysctls", {}).items():
        if now.get(name) != value:
            log(f"WARNING: {name} is {now.get(name)}, was {value}")
    for family, key in ((4, "iptables"), (6, "ip6tables")):
        before, after = (
            normalized_rules(state.get(key, "")),
            normalized_rules(iptables_save(family)),
        )
        if before != after:
            added = sorted(set(after) - set(before))
            removed = sorted(set(before) - set(after))
            log(f"note: {key} differs from before `up` (changed by someone else meanwhile?): "
                f"+{added} -{removed}")  # fmt: skip
    extra = sorted(set(links()) - set(state.get("links", [])))
    if extra:
        log(f"note: links that were not there before `up`: {extra}")


def status() -> int:
    for name in DAEMONS:
        pid = owned_pid(name)
        print(f"{name:24} {'running, pid ' + str(pid) if pid else 'not running'}")
    ok = healthy()
    print(f"healthy: {ok}  kubeconfig: {KUBECONFIG}  context: {CONTEXT}")
    return 0 if ok else 1


@contextlib.contextmanager
def lock() -> Iterator[None]:
    import fcntl

    BASE.mkdir(parents=True, exist_ok=True)
    with (BASE / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    args = parser.parse_args(argv)
    if args.command == "env":
        print(env_text(), end="")
        return 0
    if args.command == "status":
        return status()
    if os.geteuid() != 0:
        log("needs root (it runs containerd, a kubelet and changes iptables)")
        return 1
    with lock():
        try:
            if args.command == "up":
                up(ensure_tools())
            else:
                return down(Tools.saved()).summary()  # 1 if a step failed
        except ClusterError as error:
            log(f"FAILED: {error}")
            if args.command == "up":
                log(f"logs are in {LOGS}; `make cluster-down` cleans up")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
