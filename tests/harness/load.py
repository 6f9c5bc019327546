"""Steady client traffic for fault tests: what each request was told, for the audit."""

import asyncio
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from harness.processes import ManagedProcess


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
