"""Child processes that each lead their own process group, so that stopping one stops
everything it started, with their output in a log file to show when a test fails."""

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Every process group the harness starts is registered here until it is stopped, so a
# later run can stop what an interrupted run left behind.
REGISTRY = Path(os.environ.get("TMPDIR", "/tmp")) / "task-platform-harness"


_LOWEST_PORT = 10_000
_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A port nothing listens on, below the kernel's ephemeral range: a port the kernel
    hands out for `bind(0)` is one it also hands to outgoing connections (wrk's, the
    apps'), which can take it between this check and the process binding it."""
    low, high = _ephemeral_range()
    top = low if low > _LOWEST_PORT + 1000 else 65535
    for _ in range(1000):
        port = random.randrange(_LOWEST_PORT, top)  # noqa: S311
        if port in _handed_out or low <= port <= high:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port outside the ephemeral range")


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1
) -> None:
    """Poll `check` until it is true; fail with `what` once `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _start_time(pid: int) -> int | None:
    """When the process started (clock ticks since boot), None if it does not exist:
    with its pid, what tells one process from a later one that reuses the pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def stop_leftovers() -> list[str]:
    """Stop the process groups of earlier runs whose pytest is gone; what was stopped.

    Only groups provably the harness's own: a leader that still runs must be the very
    process that was recorded (same start time), not another one that got its pid. A
    leader that is gone leaves its group id reserved while members of the group live,
    so those members are still the recorded group's."""
    stopped = []
    for entry in REGISTRY.glob("*.json") if REGISTRY.exists() else []:
        try:
            record = json.loads(entry.read_text())
        except (OSError, ValueError):
            entry.unlink(missing_ok=True)
            continue
        if _alive(record["owner"]):
            continue  # another test run, still going
        leader_start = _start_time(record["pgid"])
        if leader_start is not None and leader_start != record.get("start"):
            entry.unlink(missing_ok=True)  # the pid belongs to someone else now
            continue
        try:
            os.killpg(record["pgid"], signal.SIGKILL)
            stopped.append(record["name"])
        except ProcessLookupError:
            pass
        entry.unlink(missing_ok=True)
    return stopped


@dataclass
class ManagedProcess:
    name: str
    command: Sequence[str]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    _process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert not self.running, f"{self.name} is already running"
        log = self.log_path.open("ab")
        log.write(f"--- starting: {' '.join(self.command)}\n".encode())
        log.flush()
        self._process = subprocess.Popen(
            list(self.command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()
        REGISTRY.mkdir(parents=True, exist_ok=True)
        self._registry_entry.write_text(
            json.dumps(
                {
                    "pgid": self._process.pid,
                    "start": _start_time(self._process.pid),
                    "owner": os.getpid(),
                    "name": self.name,
                }
            )
        )

    @property
    def _registry_entry(self) -> Path:
        assert self._process is not None
        return REGISTRY / f"{self._process.pid}.json"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int:
        assert self._process is not None, f"{self.name} was never started"
        return self._process.pid

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the whole group, SIGKILL if it has not ended within `timeout`."""
        self._signal_group(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would: no chance to clean up."""
        self._signal_group(signal.SIGKILL, 10.0)

    def _signal_group(self, sig: signal.Signals, timeout: float) -> None:
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, sig)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
        # Children that outlived the leader still hold the group: end them too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._registry_entry.unlink(missing_ok=True)

    def memory_kib(self, field: str = "VmRSS") -> int:
        """A memory figure of /proc/<pid>/status in KiB: VmRSS now, VmHWM the peak."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0

    def cpu_seconds(self) -> float:
        """User and system CPU time the process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
