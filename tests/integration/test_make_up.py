"""`make up` itself (scripts/up.sh), on the spec's fixed ports: it waits for a Redis that
is still loading its data, and a sidecar that exits takes the whole stack down with the
reason printed last. Under `make test-backends`, `make up BACKEND=postgres-kafka`
instead: a task it took is still there after a restart."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.backends import only_on_postgres_kafka, only_on_redis, redis_ping, selected_backend
from harness.processes import ManagedProcess, wait_until
from harness.resources import REPO_ROOT

pytestmark = pytest.mark.integration

FIXED_PORTS = (6379, 8000, 8001, 3500, 3501, 4317, 16686)
# Starts up.sh with Ctrl-C's signal at its default, as a terminal does. A test run
# started in the background of a non-interactive shell (a CI job, say) has SIGINT
# ignored, every child inherits that, and bash can then not trap it: up.sh never saw
# the Ctrl-C and its stack kept running.
AS_FROM_A_TERMINAL = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])",
]
# PostgreSQL, Kafka and its controller instead of Redis (components/postgres-kafka).
POSTGRES_KAFKA_PORTS = (5432, 9092, 9093, *FIXED_PORTS[1:])
API_KEY = "dev-task-api-key"  # components/secrets.json, as the README shows


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def sidecar_pid(session: int, app_id: str) -> int:
    """The daprd of `app_id` in that session (the harness' shared stack runs one too)."""
    found = subprocess.run(
        ["pgrep", "-s", str(session), "-f", f"daprd .*--app-id {app_id}( |$)"],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert len(found) == 1, found
    return int(found[0])


def listeners_of_session(session: int) -> dict[str, set[str]]:
    """Every TCP socket listening in a process of the session: process name -> local
    addresses. `make up` runs in a session of its own, so this is the whole stack."""
    members = {
        int(pid)
        for pid, sid in (
            line.split() for line in subprocess.run(
                ["ps", "-e", "-o", "pid=,sid="], check=True, capture_output=True, text=True
            ).stdout.splitlines()
        )
        if int(sid) == session
    }  # fmt: skip
    found: dict[str, set[str]] = {}
    sockets = subprocess.run(["ss", "-ltnpH"], check=True, capture_output=True, text=True).stdout
    for line in sockets.splitlines():
        fields = line.split()
        address = fields[3]
        for name, pid in re.findall(r'"([^"]+)",pid=(\d+)', line):
            if int(pid) in members:
                found.setdefault(name, set()).add(address)
    return found


class MakeUp:
    """scripts/up.sh in a session of its own, as a terminal would run it."""

    def __init__(self, workdir: Path, backend: str = "redis") -> None:
        self.ports: tuple[int, ...]
        if backend == "redis":
            # The ports the stack opens itself (not Redis' when one already listens).
            self.ports = FIXED_PORTS if not listening(6379) else FIXED_PORTS[1:]
        else:
            self.ports = POSTGRES_KAFKA_PORTS
        self.process = ManagedProcess(
            "make-up",
            [*AS_FROM_A_TERMINAL, str(REPO_ROOT / "scripts" / "up.sh")],
            workdir / "make-up.log",
            env={"TASK_PLATFORM_RUN_DIR": str(workdir / "run"), "BACKEND": backend},
            cwd=REPO_ROOT,
        )

    def start(self) -> None:
        busy = [port for port in self.ports if listening(port)]
        assert not busy, f"ports {busy} are taken: stop the `make up` that runs here"
        self.process.start()

    def wait_ready(self) -> None:
        for app, port in (("task-api", 8000), ("notification-service", 8001)):
            url = f"http://127.0.0.1:{port}"

            def ready_or_gone(url: str = url) -> bool:
                return ready(url) or not self.process.running

            wait_until(ready_or_gone, timeout=120, what=f"{app} /ready under make up")
            assert self.process.running, f"make up exited:\n{self.output()[-3000:]}"

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT to the foreground process group."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.exit_code(within=60)

    def exit_code(self, within: float) -> int:
        wait_until(lambda: not self.process.running, timeout=within, what="make up to exit")
        assert self.process._process is not None
        return self.process._process.returncode

    def output(self) -> str:
        return self.process.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.running:
            self.interrupt()
        self.process.stop()
        wait_until(
            lambda: not any(listening(p) for p in self.ports),
            timeout=30,
            what="make up's ports to close",
        )


@pytest.fixture
def make_up(tmp_path: Path) -> Iterator[MakeUp]:
    """`make up` on the profile the run tests (BACKEND, as `make test-backends` sets)."""
    running = MakeUp(tmp_path, backend=selected_backend())
    try:
        yield running
    except BaseException:
        print(running.output())
        raise
    finally:
        running.stop()


@pytest.fixture
def loading_redis(tmp_path: Path) -> Iterator[ManagedProcess]:
    """A Redis on 6379 that answers LOADING for several seconds: 200k keys in its
    snapshot and Redis' own test knob that slows loading down."""
    data = tmp_path / "redis-data"
    data.mkdir()
    base = ["redis-server", "--bind", "127.0.0.1", "--dir", str(data), "--appendonly", "no"]
    filler = ManagedProcess(
        "redis-filler",
        [*base, "--port", "0", "--unixsocket", str(data / "s"), "--enable-debug-command", "yes"],
        tmp_path / "redis-filler.log",
    )
    filler.start()
    cli = ["redis-cli", "-s", str(data / "s")]
    wait_until(lambda: subprocess.run([*cli, "ping"]).returncode == 0, timeout=10, what="filler")
    subprocess.run([*cli, "debug", "populate", "200000", "key", "64"], check=True)
    subprocess.run([*cli, "shutdown", "save"], check=False)
    wait_until(lambda: not filler.running, timeout=30, what="the filler to save and exit")
    server = ManagedProcess(
        "redis-loading",
        [*base, "--port", "6379", "--save", "", "--key-load-delay", "100"],
        tmp_path / "r.log",
    )
    assert not listening(6379), "port 6379 is taken: stop the Redis that runs here"
    server.start()
    wait_until(lambda: listening(6379), timeout=10, what="redis to listen")
    assert not redis_ping(6379), "Redis answered before it loaded: the test proves nothing"
    try:
        yield server
    finally:
        server.stop()


@only_on_redis("make up's Redis")
def test_make_up_waits_for_a_redis_that_is_loading_its_data(
    loading_redis: ManagedProcess, make_up: MakeUp
) -> None:
    make_up.start()
    make_up.wait_ready()
    assert redis_ping(6379)
    created = httpx.post(
        "http://127.0.0.1:8000/tasks", json={"title": "after loading"},
        headers={"X-API-Key": API_KEY}, timeout=10,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    assert "Redis is loading its data set" in make_up.output()
    # docs/operate.md's "Follow a task": its trace, from the Jaeger that make up started.
    query = {"service": "task-api", "tags": json.dumps({"task.id": created.json()["id"]})}
    wait_until(
        lambda: bool(httpx.get("http://127.0.0.1:16686/api/traces", params=query).json()["data"]),
        timeout=30,
        what="the task's trace in Jaeger",
    )
    assert make_up.interrupt() == 0


@only_on_redis("make up's Redis")
def test_a_sidecar_that_exits_stops_the_stack_with_the_reason_last(make_up: MakeUp) -> None:
    make_up.start()
    make_up.wait_ready()
    # Nothing of the stack listens beyond loopback: Redis, both apps, both sidecars'
    # API, internal gRPC and metrics ports, Jaeger's OTLP and query ports.
    listeners = listeners_of_session(make_up.process.pid)
    assert {"redis-server", "daprd", "jaeger"} <= set(listeners), listeners
    assert sum(len(a) for a in listeners.values()) >= 1 + 2 + 2 * 4 + 2, listeners
    beyond = {
        n: {a for a in addresses if not a.startswith("127.0.0.1:")}
        for n, addresses in listeners.items()
    }
    assert not any(beyond.values()), beyond
    os.kill(sidecar_pid(make_up.process.pid, "task-api"), signal.SIGKILL)
    started = time.monotonic()
    assert make_up.exit_code(within=60) != 0
    last = make_up.output().strip().splitlines()[-1]
    assert last.startswith("make up: stopped: task-api's sidecar exited"), last
    wait_until(
        lambda: not any(listening(p) for p in FIXED_PORTS),
        timeout=30,
        what="every port of the stack to close",
    )
    print(f"stack stopped {time.monotonic() - started:.1f} s after the sidecar was killed")


@only_on_postgres_kafka("make up BACKEND=postgres-kafka")
def test_make_up_on_postgres_and_kafka_notifies_and_keeps_its_tasks(make_up: MakeUp) -> None:
    headers = {"X-API-Key": API_KEY}
    make_up.start()
    make_up.wait_ready()
    created = httpx.post(
        "http://127.0.0.1:8000/tasks", json={"title": "on postgres"}, headers=headers
    )
    assert created.status_code == 201, created.text
    task = created.json()

    def notified() -> bool:
        feed = httpx.get(
            "http://127.0.0.1:8001/notifications", params={"limit": 200}, headers=headers
        ).json()["items"]
        return any(n["task_id"] == task["id"] for n in feed)

    wait_until(notified, timeout=60, what="the task's notification")
    # PostgreSQL and Kafka run in sessions of their own: found by their ports.
    sockets = subprocess.run(["ss", "-ltnH"], check=True, capture_output=True, text=True)
    addresses = {line.split()[3] for line in sockets.stdout.splitlines()}
    for port in (5432, 9092, 9093):
        on_port = {a for a in addresses if a.endswith(f":{port}")}
        assert on_port == {f"127.0.0.1:{port}"}, on_port
    assert make_up.interrupt() == 0
    wait_until(
        lambda: not any(listening(p) for p in make_up.ports),
        timeout=30,
        what="every port of the stack to close",
    )
    # Its data stays in the run directory: the next `make up` serves the same task.
    make_up.start()
    make_up.wait_ready()
    again = httpx.get(f"http://127.0.0.1:8000/tasks/{task['id']}", headers=headers)
    assert again.status_code == 200, again.text
    assert again.json() == task
    assert make_up.interrupt() == 0
