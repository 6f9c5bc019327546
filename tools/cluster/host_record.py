"""The host as `up` found it: every setting it will touch, written down in host-state.json
before the first change, put back by `down`, and compared with the host afterwards.
The teardown's step runner is tools/host_state.py, shared with the Docker engine's restore."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .commands import log, run
from .layout import (
    BASE,
    CGROUP_ROOT,
    CNI_CACHE,
    CONTAINER_LOGS,
    CONTAINERD_SHIM_SOCKETS,
    HOST_STATE,
    KUBELET_FIXED_DIR,
    NETNS_DIR,
)

# host_state.py lies in tools/, beside this package: found when the package runs (its
# __main__.py puts tools/ on the path), and also when a test loads the package by its path.
# mypy, run on tools/ from the repository root, knows it as tools.host_state. The other
# modules of the package import it from here.
if str(Path(__file__).resolve().parent.parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
if TYPE_CHECKING:
    from tools import host_state as host_state
else:
    import host_state as host_state

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


def restore_sysctl(name: str, value: str) -> None:
    path = sysctl_path(name)
    if path.exists() and path.read_text().strip() != value:  # gone: its module was unloaded
        write_sysctl(name, value)


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
