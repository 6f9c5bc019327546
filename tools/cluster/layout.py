"""Where the cluster lives: its directories in the cache, the fixed host paths the kubelet,
containerd and the CNI plugins use, and the cluster's names and addresses."""

from __future__ import annotations

import json
import os
from pathlib import Path

# tools/cluster/layout.py: three levels below the repository's root.
REPO = Path(__file__).resolve().parent.parent.parent
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


def containerd_socket() -> Path:
    return RUN / "containerd/containerd.sock"


def write_json(path: Path, data: object, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    path.chmod(mode)
    return path
