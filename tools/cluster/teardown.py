"""What `down` stops and removes besides the network: the pods and containers, leftover
shims, the mounts, cgroups and files the kubelet and containerd leave, the run directory."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import time
from functools import partial
from pathlib import Path
from typing import Any

from .binaries import Tools
from .commands import ClusterError, log, run
from .daemons import owned_pid, stop_daemon, wait_for
from .host_record import cgroup_dirs, host_state
from .kubeconfigs import kubectl
from .layout import (
    BASE,
    CNI_CACHE,
    CNI_NETWORK,
    CONTAINER_LOGS,
    CONTAINERD_SHIM_SOCKETS,
    KUBELET_FIXED_DIR,
    NETNS_DIR,
    RUN,
    containerd_socket,
)


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


def remove_idle_shim_sockets() -> None:
    """/run/containerd appeared with our containerd: remove it unless a socket there still
    answers (another containerd's shim)."""
    for entry in CONTAINERD_SHIM_SOCKETS.rglob("*"):
        if entry.is_socket():
            with socket.socket(socket.AF_UNIX) as probe, contextlib.suppress(OSError):
                probe.connect(str(entry))
                return
    shutil.rmtree(CONTAINERD_SHIM_SOCKETS, ignore_errors=True)
