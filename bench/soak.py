"""`make soak`: minutes of mixed traffic on the real stack, then an audit.

Closed-loop clients create, read, list, patch, complete and delete tasks as fast as the
stack answers. Afterwards the audit compares what clients were told with what task-api
stores and what notification-service recorded: no 5xx, no missing task, every create
and every completion notified exactly once; process memory is sampled throughout.

    uv run python bench/soak.py --seconds 180 --clients 16
"""

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))

from harness.load import notification_lines  # noqa: E402
from harness.processes import stop_leftovers  # noqa: E402
from harness.stack import Stack, list_all_tasks, task_api_client  # noqa: E402

# Operation mix: weights out of 100.
MIX = {"create": 35, "get": 25, "list": 10, "patch": 12, "complete": 12, "delete": 6}


@dataclass
class Truth:
    """What clients were told: the last acknowledged state of every task."""

    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    completed: set[str] = field(default_factory=set)
    statuses: Counter[str] = field(default_factory=Counter)
    busy: set[str] = field(default_factory=set)


async def client_loop(api: httpx.AsyncClient, truth: Truth, stop: asyncio.Event, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - traffic shape, not security
    operations, weights = zip(*MIX.items(), strict=True)
    while not stop.is_set():
        operation = rng.choices(operations, weights)[0]
        live = [t for t in truth.tasks if t not in truth.deleted and t not in truth.busy]
        if operation != "create" and operation != "list" and not live:
            operation = "create"
        task_id = rng.choice(live) if operation not in ("create", "list") else None
        if task_id:
            truth.busy.add(task_id)  # one client at a time per task keeps the truth exact
        try:
            await perform(api, truth, operation, task_id, rng)
        finally:
            truth.busy.discard(task_id or "")


async def perform(
    api: httpx.AsyncClient, truth: Truth, operation: str, task_id: str | None, rng: random.Random
) -> None:
    if operation == "create":
        response = await api.post("/tasks", json={"title": f"soak {rng.random():.6f}"})
        if response.status_code == 201:
            truth.tasks[response.json()["id"]] = response.json()
    elif operation == "get":
        response = await api.get(f"/tasks/{task_id}")
    elif operation == "list":
        response = await api.get("/tasks", params={"limit": 20})
    elif operation == "patch":
        response = await api.patch(f"/tasks/{task_id}", json={"priority": rng.randint(1, 5)})
        if response.status_code == 200:
            truth.tasks[str(task_id)] = response.json()
    elif operation == "complete":
        response = await api.put(f"/tasks/{task_id}/status", params={"status": "completed"})
        if response.status_code == 200:
            truth.tasks[str(task_id)] = response.json()
            truth.completed.add(str(task_id))
    else:
        response = await api.delete(f"/tasks/{task_id}")
        if response.status_code == 204:
            truth.deleted.add(str(task_id))
    truth.statuses[f"{operation} {response.status_code}"] += 1


async def audit(stack: Stack, truth: Truth) -> dict[str, Any]:
    app = stack.notification_service.app
    assert app is not None
    created = set(truth.tasks)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        activity = notification_lines(app, "activity", "task.created")
        notified = notification_lines(app, "notify", "task.completed")
        if created <= set(activity) and truth.completed <= set(notified):
            break
        await asyncio.sleep(1)
    async with task_api_client(stack) as api:
        missing, wrong = [], []
        for task_id, expected in truth.tasks.items():
            response = await api.get(f"/tasks/{task_id}")
            if task_id in truth.deleted:
                if response.status_code != 404:
                    wrong.append(task_id)
            elif response.status_code != 200:
                missing.append(task_id)
            elif response.json() != expected:
                wrong.append(task_id)
        listed = Counter(task["id"] for task in await list_all_tasks(api))
    live = created - truth.deleted
    return {
        "tasks_created": len(created),
        "tasks_deleted": len(truth.deleted),
        "tasks_completed": len(truth.completed),
        "tasks_missing": len(missing),
        "tasks_not_as_acknowledged": len(wrong),
        "creates_not_notified": len(created - set(activity)),
        "creates_notified_twice": sum(1 for t in created if activity[t] > 1),
        "completions_not_notified": len(truth.completed - set(notified)),
        "completions_notified_twice": sum(1 for t in truth.completed if notified[t] > 1),
        # GET /tasks, paged to the end: every live task once, no deleted one.
        "tasks_not_listed": len(live - set(listed)),
        "tasks_listed_twice": sum(1 for t in live if listed[t] > 1),
        "deleted_tasks_listed": len(truth.deleted & set(listed)),
    }


def progress(message: str) -> None:
    print(f"soak: {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


async def soak(seconds: float, clients: int) -> dict[str, Any]:
    stop_leftovers()
    stack = Stack(Path(tempfile.mkdtemp(prefix="soak-")))
    progress(f"starting the stack in {stack.workdir}")
    stack.start()
    try:
        truth, stop = Truth(), asyncio.Event()
        processes = [p for s in stack.services for p in s.processes()]
        memory: dict[str, list[int]] = {p.name: [] for p in processes}
        limits = httpx.Limits(max_connections=clients)
        async with httpx.AsyncClient(
            base_url=stack.task_api.url,
            headers={"X-API-Key": stack.api_key},
            timeout=30.0,
            limits=limits,
        ) as api:
            loops = [asyncio.create_task(client_loop(api, truth, stop, i)) for i in range(clients)]
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                for process in processes:
                    memory[process.name].append(process.memory_kib())
                progress(f"{sum(truth.statuses.values())} requests so far")
                await asyncio.sleep(5)
            stop.set()
            await asyncio.gather(*loops)
            elapsed = time.monotonic() - started
        requests = sum(truth.statuses.values())
        report: dict[str, Any] = {
            "seconds": round(elapsed, 1),
            "clients": clients,
            "requests": requests,
            "requests_per_second": round(requests / elapsed, 1),
            "server_errors": sum(
                n for k, n in truth.statuses.items() if k.split()[1].startswith("5")
            ),
            "answers": dict(sorted(truth.statuses.items())),
            "rss_mib": {
                name: {
                    "first": round(samples[0] / 1024, 1),
                    "last": round(samples[-1] / 1024, 1),
                    "peak": round(max(samples) / 1024, 1),
                }
                for name, samples in memory.items()
            },
        }
        progress(f"load done: {requests} requests; auditing")
        report["audit"] = await audit(stack, truth)
        return report
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    report = asyncio.run(soak(args.seconds, args.clients))
    results = REPO_ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "soak.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    audit_failures = {k: v for k, v in report["audit"].items() if not k.startswith("tasks_") and v}
    broken = report["server_errors"] or audit_failures or report["audit"]["tasks_missing"]
    broken = broken or report["audit"]["tasks_not_as_acknowledged"]
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
