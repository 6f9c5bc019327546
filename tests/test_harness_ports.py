"""The harness's ports: a port it hands out must not be one the kernel may give an
outgoing connection before the process that wants it has bound it (a bench run lost a
sidecar to "could not listen on any endpoint" that way)."""

import json
import subprocess
from pathlib import Path

from harness.processes import REGISTRY, ManagedProcess, _ephemeral_range, free_port, stop_leftovers


def test_free_ports_are_outside_the_ephemeral_range_and_never_repeat() -> None:
    low, high = _ephemeral_range()
    ports = [free_port() for _ in range(200)]
    assert not [port for port in ports if low <= port <= high]
    assert len(set(ports)) == len(ports)


def test_leftovers_are_stopped_only_when_provably_the_harness_own(tmp_path: Path) -> None:
    """A registry entry whose pid now belongs to another process (the pid was reused)
    must not get that process killed; a recorded group whose runner is gone is."""
    ours = ManagedProcess("ours", ["sleep", "60"], tmp_path / "ours.log")
    ours.start()
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    try:
        for pid, start in ((ours.pid, None), (stranger.pid, 1)):
            entry = REGISTRY / f"{pid}.json"
            record = json.loads(entry.read_text()) if entry.exists() else {"pgid": pid, "name": "x"}
            record["owner"] = gone.pid
            if start is not None:
                record["start"] = start  # recorded for a process that started at boot
            entry.write_text(json.dumps(record))
        stopped = stop_leftovers()
        assert "ours" in stopped
        assert stranger.poll() is None, "a process that is not the harness's was killed"
    finally:
        stranger.kill()
        stranger.wait()
        ours.stop()
