"""Steady client traffic for fault tests: what each request was told, for the audit."""

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from harness.polling import eventually
from harness.processes import ManagedProcess
from harness.stack import Stack, task_api_client


@dataclass
class Outcomes:
    acknowledged: list[dict[str, Any]] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def attempts(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())


async def create_tasks(
    client: httpx.AsyncClient, outcomes: Outcomes, stop: asyncio.Event, *, workers: int, prefix: str
) -> None:
    """Create tasks from `workers` concurrent clients until `stop` is set."""
    numbers = itertools.count()

    async def worker() -> None:
        while not stop.is_set():
            try:
                response = await client.post("/tasks", json={"title": f"{prefix} {next(numbers)}"})
            except httpx.TransportError as error:
                outcomes.errors[type(error).__name__] += 1
                await asyncio.sleep(0.05)  # the app is down: do not spin
                continue
            outcomes.statuses[response.status_code] += 1
            if response.status_code == 201:
                outcomes.acknowledged.append(response.json())

    await asyncio.gather(*(worker() for _ in range(workers)))


def notification_lines(process: ManagedProcess, kind: str, event_type: str) -> Counter[str]:
    """How many times notification-service logged each task for one kind of event."""
    prefix = f"{kind.upper()} {event_type} task="
    counts: Counter[str] = Counter()
    for line in process.log_path.read_text().splitlines():
        at = line.find(prefix)
        if at >= 0:
            counts[line[at + len(prefix) :].split()[0]] += 1
    return counts


def progress(check: Callable[[], bool]) -> Callable[[], Any]:
    """A synchronous check as a probe for `eventually`."""

    async def probe() -> bool:
        return check()

    return probe


async def create_until(stack: Stack, acknowledged: int, *, workers: int = 8) -> Outcomes:
    """Create tasks from `workers` clients until `acknowledged` of them got a 201."""
    outcomes, stop = Outcomes(), asyncio.Event()
    async with task_api_client(stack) as api:
        load = asyncio.create_task(
            create_tasks(api, outcomes, stop, workers=workers, prefix="load")
        )
        await eventually(
            progress(lambda: outcomes.statuses[201] >= acknowledged),
            within=120,
            what=f"{acknowledged} creates acknowledged",
        )
        stop.set()
        await load
    return outcomes


async def audit_acknowledged_creates(stack: Stack, acknowledged: list[dict[str, Any]]) -> None:
    """Every task that got a 201 is stored as acknowledged, and notification-service
    recorded its task.created exactly once."""
    assert acknowledged
    async with task_api_client(stack) as api:
        for task in acknowledged:
            assert (await api.get(f"/tasks/{task['id']}")).json() == task
    ids = {task["id"] for task in acknowledged}

    def all_delivered() -> bool:
        return ids <= set(notified(stack, "activity", "task.created"))

    await eventually(progress(all_delivered), within=90, what="every acknowledged create notified")
    counts = notified(stack, "activity", "task.created")
    assert {task_id: counts[task_id] for task_id in ids} == dict.fromkeys(ids, 1)


def notified(stack: Stack, kind: str, event_type: str) -> Counter[str]:
    """notification_lines of every notification-service replica, added up."""
    counts: Counter[str] = Counter()
    for replica in stack.replicas["notification-service"]:
        if replica.app is not None:
            counts += notification_lines(replica.app, kind, event_type)
    return counts
