"""Pods die while creates run through the Service, under `make e2e-k8s`: one task-api
pod is deleted (a rollout, a drain) and the other's containers are SIGKILLed (a crash).
Every create that was answered 201 is notified, every pod is 2/2 again, and no daprd
stays busy afterwards (stock daprd 1.18.1's outbox relay spun on what such deaths leave
behind: third_party/dapr/README.md).

The load goes to task-api's ClusterIP from this machine, which is the cluster's node:
kube-proxy spreads it over the ready pods, as for any client inside the cluster.
"""

import asyncio
import itertools
import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.kubernetes import app_pods, kubectl, ready_containers
from harness.polling import eventually

pytestmark = pytest.mark.skipif(
    "TASK_PLATFORM_TILT_DIR" not in os.environ, reason="runs under `make e2e-k8s` (a cluster)"
)
API_KEY = "dev-task-api-key"
IDLE_CORES = 0.1


def all_ready(app: str) -> bool:
    running = app_pods(app)
    return len(running) == 2 and all(ready_containers(p) == (2, 2) for p in running)


def service_url() -> str:
    service = json.loads(kubectl("get", "service", "task-api", "-o", "json"))
    return f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}"


def pod_processes(pod: dict[str, Any]) -> list[int]:
    """Host pids of the pod's app and sidecar (not its sandbox's pause), by cgroup."""
    uid = pod["metadata"]["uid"]
    marks = (f"pod{uid}", f"pod{uid.replace('-', '_')}")
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cgroups = (proc / "cgroup").read_text()
            command = (proc / "comm").read_text().strip()
        except OSError:
            continue
        if command != "pause" and any(mark in cgroups for mark in marks):
            found.append(int(proc.name))
    return found


def daprd_cores(seconds: float = 5.0) -> dict[int, float]:
    """CPU each daprd process on this node used over `seconds`, in cores."""

    def cpu() -> dict[int, int]:
        ticks = {}
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and (proc / "comm").read_text().strip() == "daprd":
                    fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                    ticks[int(proc.name)] = int(fields[11]) + int(fields[12])
            except OSError:
                continue
        return ticks

    before = cpu()
    time.sleep(seconds)
    after = cpu()
    hz = os.sysconf("SC_CLK_TCK")
    return {pid: (after[pid] - before[pid]) / hz / seconds for pid in before if pid in after}


def notified_ids() -> Counter[str]:
    prefix = "ACTIVITY task.created task="
    log = kubectl(
        "logs", "-l", "app.kubernetes.io/name=notification-service", "-c",
        "notification-service", "--tail=-1", "--prefix=false",
    )  # fmt: skip
    return Counter(
        line[line.find(prefix) + len(prefix) :].split()[0]
        for line in log.splitlines()
        if prefix in line
    )


async def test_every_acknowledged_create_survives_a_deleted_and_a_killed_pod() -> None:
    acknowledged: list[str] = []
    failures: Counter[str] = Counter()
    stop = asyncio.Event()
    numbers = itertools.count()

    async def worker(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            try:
                response = await client.post("/tasks", json={"title": f"rollout {next(numbers)}"})
            except httpx.TransportError as error:
                failures[type(error).__name__] += 1
                await asyncio.sleep(0.05)
                continue
            if response.status_code == 201:
                acknowledged.append(response.json()["id"])
            else:
                failures[str(response.status_code)] += 1

    async def fifty_more() -> None:
        target = len(acknowledged) + 50

        async def reached() -> bool:
            return len(acknowledged) >= target

        await eventually(reached, within=120, what=f"{target} creates through the Service")

    first, second = (p["metadata"]["name"] for p in app_pods("task-api"))
    headers = {"X-API-Key": API_KEY}
    async with httpx.AsyncClient(base_url=service_url(), headers=headers, timeout=10) as client:
        load = [asyncio.create_task(worker(client)) for _ in range(6)]
        await fifty_more()
        kubectl("delete", "pod", first, "--wait=false")
        await fifty_more()
        victim = next(p for p in app_pods("task-api") if p["metadata"]["name"] == second)
        for pid in pod_processes(victim):
            os.kill(pid, signal.SIGKILL)
        await fifty_more()
        stop.set()
        await asyncio.gather(*load)
    print(f"{len(acknowledged)} creates acknowledged; refused or failed: {dict(failures)}")

    wanted = set(acknowledged)

    async def all_notified() -> bool:
        return wanted <= set(await asyncio.to_thread(notified_ids))

    await eventually(all_notified, within=180, what="every acknowledged create notified")
    counts = await asyncio.to_thread(notified_ids)
    assert {task: counts[task] for task in wanted} == dict.fromkeys(wanted, 1)

    async def pods_ready() -> bool:
        return await asyncio.to_thread(all_ready, "task-api") and await asyncio.to_thread(
            all_ready, "notification-service"
        )

    await eventually(pods_ready, within=240, what="every pod 2/2 again", interval=2)
    busy = await asyncio.to_thread(daprd_cores)
    print(f"daprd CPU afterwards (cores): {busy}")
    assert busy, "no daprd process found on the node"
    assert max(busy.values()) < IDLE_CORES, busy
