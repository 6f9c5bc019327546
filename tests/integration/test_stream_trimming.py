"""Redis keeps a bounded number of entries per stream: `task-events` and the outbox's
internal topic are trimmed at `maxLenApprox` as they are written (components/resources/
pubsub.yaml, outbox-pubsub.yaml), and trimming takes nothing a consumer still needs.

Without it every write left an entry in each stream forever, after every consumer group
had acknowledged it: about 1.6 KB of Redis per write, kept until Redis ran out of
memory. This module runs the stack with a small cap, so that a few thousand writes pass
it."""

import asyncio
import contextlib
import itertools
import subprocess
import sys
from collections import Counter

import pytest

from harness.backends import only_on_redis
from harness.load import notified
from harness.polling import eventually
from harness.stack import Stack, task_api_client

pytestmark = [
    only_on_redis("counts and measures Redis streams"),
    pytest.mark.stack_variant(
        component_metadata={
            "pubsub": {"maxLenApprox": "1000"},
            "outbox-pubsub": {"maxLenApprox": "1000"},
        }
    ),
]

CAP = 1000
# Trimming with `~` removes whole nodes of the stream's radix tree: a stream may hold up
# to one node (stream-node-max-entries, 100 by default) more than the cap.
SLACK = 100
WRITES = 4000
CLIENTS = 8


def redis(stack: Stack, *args: str) -> str:
    assert stack.backend.redis is not None
    command = ["redis-cli", "-p", str(stack.backend.redis.port), *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def keys(stack: Stack, pattern: str, kind: str | None = None) -> list[str]:
    """The keys matching `pattern` (of type `kind`), by SCAN."""
    found, cursor = [], "0"
    while True:
        args = [
            "SCAN",
            cursor,
            "MATCH",
            pattern,
            "COUNT",
            "10000",
            *(["TYPE", kind] if kind else []),
        ]
        cursor, *batch = redis(stack, *args).split("\n")
        found += [key for key in batch if key]
        if cursor == "0":
            return found


def streams(stack: Stack) -> dict[str, int]:
    """Every stream in Redis and its length."""
    return {name: int(redis(stack, "XLEN", name)) for name in keys(stack, "*", "stream")}


def used_memory(stack: Stack) -> int:
    for line in redis(stack, "INFO", "memory").splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
    raise AssertionError("no used_memory in INFO memory")


async def patch_many(stack: Stack, count: int) -> Counter[int]:
    """`count` PATCHes from CLIENTS clients, each to a task of its own (no lost races),
    each a change: one event each."""
    statuses: Counter[int] = Counter()
    numbers = itertools.count()
    async with task_api_client(stack) as api:

        async def client(n: int) -> None:
            task = (await api.post("/tasks", json={"title": f"trimmed task {n}"})).json()
            while (write := next(numbers)) < count:
                # A change each time: a PATCH that changes nothing publishes nothing.
                response = await api.patch(f"/tasks/{task['id']}", json={"title": f"write {write}"})
                statuses[response.status_code] += 1

        await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    return statuses


async def test_both_streams_stay_at_their_cap_and_lose_no_event(own_stack: Stack) -> None:
    before = notified(own_stack, "activity", "task.updated")
    statuses = await patch_many(own_stack, WRITES)
    # Back-pressure may answer 503: then the write did not happen, and has no event.
    assert set(statuses) <= {200, 503}, statuses
    updated = statuses[200]
    assert updated > 2 * CAP

    async def all_recorded() -> bool:
        handled = notified(own_stack, "activity", "task.updated") - before
        return sum(handled.values()) >= updated

    # Every event of a write that happened was handled: the cap is above the backlog.
    with contextlib.suppress(AssertionError):
        await eventually(all_recorded, within=120, what="every update recorded")
    handled = notified(own_stack, "activity", "task.updated") - before
    assert sum(handled.values()) == updated, (sum(handled.values()), statuses)

    lengths = streams(own_stack)
    print(f"stream lengths after {WRITES} writes: {lengths}", file=sys.stderr)
    # The outbox's internal topic is named after the app-id and the topic.
    assert lengths["task-events"] > CAP / 2, lengths
    assert lengths["defaulttask-apitask-eventsoutbox"] > CAP / 2, lengths
    for name, length in lengths.items():
        assert length <= CAP + SLACK, (name, length)


async def test_redis_memory_per_write_once_the_streams_are_full(own_stack: Stack) -> None:
    """What a write costs Redis once the streams are at their cap: its notification
    claim (kept for the dedupe TTL) and nothing that stays in a stream. The figures go
    to docs/design.md (Redis' memory)."""
    await patch_many(own_stack, 2 * CAP)  # the streams at their cap, whatever ran before
    lengths = streams(own_stack)
    start = used_memory(own_stack)
    before = notified(own_stack, "activity", "task.updated")
    statuses = await patch_many(own_stack, WRITES)

    async def all_recorded() -> bool:
        handled = notified(own_stack, "activity", "task.updated") - before
        return sum(handled.values()) >= statuses[200]

    await eventually(all_recorded, within=120, what="every update recorded")
    per_write = (used_memory(own_stack) - start) / statuses[200]
    entry = {
        name: int(redis(own_stack, "MEMORY", "USAGE", name, "SAMPLES", "0")) / length
        for name, length in streams(own_stack).items()
        if length
    }
    claim = int(redis(own_stack, "MEMORY", "USAGE", keys(own_stack, "*seen:activity:*")[0]))
    print(
        f"Redis per write with the streams at their cap: {per_write:.0f} bytes; "
        f"per stream entry: { {k: round(v) for k, v in entry.items()} }; "
        f"a claim key: {claim} bytes; stream lengths before: {lengths}",
        file=sys.stderr,
    )
    # A claim and its share of Redis' own overhead; a stream entry alone is ~800 bytes
    # for each of the two streams.
    assert per_write < 1000, per_write

    # A create keeps its task besides (data: it stays until the task is deleted).
    async with task_api_client(own_stack) as api:
        for i in range(CAP // 2):
            assert (await api.post("/tasks", json={"title": f"kept {i}"})).status_code == 201
    tasks = keys(own_stack, "*||task:*")
    index = keys(own_stack, "*||tasks-index:*")
    task_bytes = sum(int(redis(own_stack, "MEMORY", "USAGE", k)) for k in tasks + index)
    print(f"Redis per task kept: {task_bytes / len(tasks):.0f} bytes", file=sys.stderr)
