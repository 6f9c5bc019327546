"""Every list request does bounded work, whatever its cursor or filter (issue 17): a
forged cursor is refused at once, and a filter that matches nothing answers after a
capped number of reads with a cursor to continue from. Deletes, in whatever order,
leave a first page that holds the tasks left (issue 26)."""

import asyncio
import base64
import time
from datetime import datetime
from typing import Any

import httpx

from harness.load import create_until
from harness.polling import eventually
from harness.stack import Stack

# The cursor of the issue: each of the sixteen shards "continues" 3.2 million entries
# down, which the server used to walk one sidecar round trip per index page.
FORGED = base64.urlsafe_b64encode(".".join(["3200000"] * 16).encode()).decode().rstrip("=")
# Enough tasks that a filter matching none of them exceeds one request's budget.
NEWER_TASKS = 300
# Enough tasks for more index pages in every shard (16 shards of 32-entry pages) than
# one list request reads (8): deleted newest first, they used to leave that many
# emptied pages, never linked past, above the tasks left.
DELETED_NEWEST_FIRST = 4500


async def create_many(client: httpx.AsyncClient, count: int, title: str) -> list[str]:
    limit = asyncio.Semaphore(16)

    async def one(i: int) -> str:
        async with limit:
            response = await client.post("/tasks", json={"title": f"{title} {i}"})
            assert response.status_code == 201, response.text
            task_id: str = response.json()["id"]
            return task_id

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def timed_get(client: httpx.AsyncClient, **params: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.get("/tasks", params=params)
    return response, time.monotonic() - started


async def test_a_forged_cursor_is_refused_at_once(task_api: httpx.AsyncClient) -> None:
    response, took = await timed_get(task_api, limit=1, cursor=FORGED)
    assert response.status_code == 400, response.text
    assert response.json() == {"detail": "invalid cursor"}
    assert took < 2.0, f"took {took:.2f}s"


async def test_a_filter_that_matches_nothing_answers_with_a_cursor_to_continue(
    task_api: httpx.AsyncClient,
) -> None:
    matching = await create_many(task_api, 5, "bounded: in progress")
    for task_id in matching:
        moved = await task_api.put(f"/tasks/{task_id}/status", params={"status": "in_progress"})
        assert moved.status_code == 200, moved.text
    await create_many(task_api, NEWER_TASKS, "bounded: pending")

    # The newest tasks are all pending: the first page stops at its budget, empty.
    first, took = await timed_get(task_api, status="in_progress", limit=1)
    assert first.status_code == 200, first.text
    assert first.json()["items"] == []
    assert first.json()["next_cursor"] is not None
    assert took < 3.0, f"took {took:.2f}s"

    # Continuing reaches the end, and meets each matching task exactly once.
    seen: list[str] = []
    cursor: str | None = None
    requests = 0
    deadline = time.monotonic() + 120
    while True:
        params = {"status": "in_progress", "limit": 100, **({"cursor": cursor} if cursor else {})}
        page, took = await timed_get(task_api, **params)
        requests += 1
        assert page.status_code == 200, page.text
        assert took < 3.0, f"request {requests} took {took:.2f}s"
        seen += [item["id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
        assert time.monotonic() < deadline, f"no end after {requests} requests"
    assert requests > 1  # the walk was split into bounded requests
    assert len(seen) == len(set(seen))
    assert set(matching) <= set(seen)


async def delete_in_order(client: httpx.AsyncClient, task_ids: list[str], workers: int) -> None:
    """Deletes the tasks in this order, `workers` at a time; a 503 (the write limiter
    shedding load) is tried again."""
    remaining = iter(task_ids)

    async def worker() -> None:
        for task_id in remaining:

            async def deleted(task_id: str = task_id) -> bool:
                response = await client.delete(f"/tasks/{task_id}")
                assert response.status_code in (204, 404, 503), response.text
                return response.status_code != 503

            await eventually(deleted, within=60, what=f"task {task_id} deleted")

    await asyncio.gather(*(worker() for _ in range(workers)))


async def test_after_deleting_newest_first_the_first_page_holds_the_tasks_left(
    stack: Stack, task_api: httpx.AsyncClient
) -> None:
    kept: list[str] = []
    for i in range(3):
        created = await task_api.post("/tasks", json={"title": f"newest first: kept {i}"})
        assert created.status_code == 201, created.text
        kept.append(created.json()["id"])
    doomed = (await create_until(stack, DELETED_NEWEST_FIRST, workers=16)).acknowledged
    newest_first = sorted(
        doomed, key=lambda task: datetime.fromisoformat(task["created_at"]), reverse=True
    )
    await delete_in_order(task_api, [task["id"] for task in newest_first], workers=8)

    # The tasks kept are the newest left: a fresh list starts with them, at once.
    first, took = await timed_get(task_api, limit=len(kept))
    assert first.status_code == 200, first.text
    assert [item["id"] for item in first.json()["items"]] == list(reversed(kept))
    assert took < 3.0, f"took {took:.2f}s"
