"""The cluster's daemons as plain processes: started in their own process group with a
pidfile (pid and start time, so a recycled pid is never taken for ours), stopped by group,
and waited for."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .commands import ClusterError, log
from .layout import LOGS, RUN

# Daemons in start order. `down` (cli.py) stops them in an order of its own: what recreates
# pods first, containerd before the API server, the registry last.
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
