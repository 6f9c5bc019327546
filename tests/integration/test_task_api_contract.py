"""task-api's REST contract through its real sidecar and Redis: every route and status
code, and the concurrency guarantees."""

import asyncio
from typing import Any
from uuid import uuid4

import httpx

from harness.polling import eventually
from harness.stack import list_all_tasks, notifications_for


async def create(
    client: httpx.AsyncClient,
    title: str = "Write the spec",
    headers: dict[str, str] | None = None,
    **body: Any,
) -> httpx.Response:
    response = await client.post("/tasks", json={"title": title, **body}, headers=headers)
    assert response.status_code == 201, response.text
    return response


async def test_every_route_and_its_status_codes(task_api: httpx.AsyncClient) -> None:
    created = await create(task_api, description="All of it", priority=2)
    task = created.json()
    task_id = task["id"]
    assert created.headers["Location"] == f"/tasks/{task_id}"

    got = await task_api.get(f"/tasks/{task_id}")
    assert (got.status_code, got.json(), got.headers["ETag"]) == (
        200,
        task,
        created.headers["ETag"],
    )
    assert (await task_api.get(f"/tasks/{uuid4()}")).status_code == 404
    assert (await task_api.get("/tasks/not-a-uuid")).status_code == 422

    patched = await task_api.patch(
        f"/tasks/{task_id}",
        json={"title": "Renamed"},
        headers={"If-Match": created.headers["ETag"]},
    )
    assert (patched.status_code, patched.json()["title"]) == (200, "Renamed")
    stale = await task_api.patch(
        f"/tasks/{task_id}", json={"title": "Lost"}, headers={"If-Match": created.headers["ETag"]}
    )
    assert stale.status_code == 412

    by_query = await task_api.put(f"/tasks/{task_id}/status", params={"status": "in_progress"})
    assert by_query.json()["status"] == "in_progress"
    by_body = await task_api.put(f"/tasks/{task_id}/status", json={"status": "completed"})
    assert by_body.json()["status"] == "completed"

    assert (await task_api.post("/tasks", json={"title": ""})).status_code == 422
    too_big = await task_api.post(
        "/tasks",
        content=b'{"title":"' + b"x" * 70_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert too_big.status_code == 413
    assert (await task_api.get("/tasks", params={"cursor": "tampered"})).status_code == 400
    assert (await task_api.get("/tasks", params={"limit": 101})).status_code == 422

    assert (await task_api.delete(f"/tasks/{task_id}")).status_code == 204
    assert (await task_api.get(f"/tasks/{task_id}")).status_code == 404
    assert (await task_api.delete(f"/tasks/{task_id}")).status_code == 404
    assert (await task_api.get("/tasks", headers={"X-API-Key": "wrong"})).status_code == 401


async def test_each_change_publishes_its_event(
    task_api: httpx.AsyncClient, notification_service: httpx.AsyncClient
) -> None:
    task_id = (await create(task_api, "Eventful")).json()["id"]
    await task_api.patch(f"/tasks/{task_id}", json={"priority": 4})
    await task_api.put(f"/tasks/{task_id}/status", params={"status": "in_progress"})
    await task_api.delete(f"/tasks/{task_id}")
    expected = ["task.created", "task.updated", "task.in_progress", "task.deleted"]

    async def all_four() -> list[str] | None:
        seen = [
            str(n["event_type"])
            for n in await notifications_for(notification_service, task_id, "activity")
        ]
        return seen if len(seen) >= len(expected) else None

    assert sorted(await eventually(all_four, what="four activity notifications")) == sorted(
        expected
    )


async def test_if_match_holds_when_any_listed_strong_tag_is_current(
    task_api: httpx.AsyncClient,
) -> None:
    """RFC 9110: `*`, or a list of entity tags of which any one matches the current
    ETag by strong comparison; a weak tag never matches, a header that is not a list of
    entity tags is bad input. Refused writes change nothing."""
    created = await create(task_api, "Listed tags")
    task_id, old = created.json()["id"], created.headers["ETag"]
    current = (await task_api.patch(f"/tasks/{task_id}", json={"priority": 2})).headers["ETag"]

    listed = await task_api.patch(
        f"/tasks/{task_id}", json={"title": "Either"}, headers={"If-Match": f"{old}, {current}"}
    )
    assert listed.status_code == 200, listed.text
    current = listed.headers["ETag"]
    starred = await task_api.put(
        f"/tasks/{task_id}/status", params={"status": "in_progress"}, headers={"If-Match": "*"}
    )
    assert starred.status_code == 200, starred.text
    current = starred.headers["ETag"]
    for refused, status in [
        (f"W/{current}", 412),
        (f'{old}, W/{current}, "other"', 412),
        (current.strip('"'), 400),
        (f"*, {current}", 400),
    ]:
        response = await task_api.patch(
            f"/tasks/{task_id}", json={"title": "Refused"}, headers={"If-Match": refused}
        )
        assert response.status_code == status, (refused, response.text)
    after = await task_api.get(f"/tasks/{task_id}")
    assert (after.json()["title"], after.headers["ETag"]) == ("Either", current)
    deleted = await task_api.delete(f"/tasks/{task_id}", headers={"If-Match": f'"x", {current}'})
    assert deleted.status_code == 204


async def test_sixteen_racers_on_one_etag_exactly_one_wins(task_api: httpx.AsyncClient) -> None:
    created = await create(task_api, "Contended")
    task_id, etag = created.json()["id"], created.headers["ETag"]

    async def rename(i: int) -> int:
        response = await task_api.patch(
            f"/tasks/{task_id}", json={"title": f"winner {i}"}, headers={"If-Match": etag}
        )
        return response.status_code

    codes = await asyncio.gather(*(rename(i) for i in range(16)))
    assert codes.count(200) == 1, codes
    assert set(codes) <= {200, 409, 412}, codes
    [winner] = [i for i, code in enumerate(codes) if code == 200]
    assert (await task_api.get(f"/tasks/{task_id}")).json()["title"] == f"winner {winner}"


async def test_concurrent_read_modify_write_loops_lose_nothing(task_api: httpx.AsyncClient) -> None:
    task_id = (await create(task_api, "Counter", description="")).json()["id"]
    workers, rounds = 6, 5

    async def append_marks(worker: int) -> None:
        for step in range(rounds):
            while True:
                current = await task_api.get(f"/tasks/{task_id}")
                marks = (current.json()["description"] or "") + f"[{worker}.{step}]"
                response = await task_api.patch(
                    f"/tasks/{task_id}",
                    json={"description": marks},
                    headers={"If-Match": current.headers["ETag"]},
                )
                if response.status_code == 200:
                    break
                assert response.status_code in (409, 412), response.text

    await asyncio.gather(*(append_marks(w) for w in range(workers)))
    final = (await task_api.get(f"/tasks/{task_id}")).json()["description"]
    expected = {f"[{w}.{s}]" for w in range(workers) for s in range(rounds)}
    assert {part + "]" for part in final.split("]") if part} == expected


async def test_forty_concurrent_creates_are_all_listed(task_api: httpx.AsyncClient) -> None:
    marker = uuid4().hex[:8]
    responses = await asyncio.gather(
        *(task_api.post("/tasks", json={"title": f"{marker} #{i}"}) for i in range(40))
    )
    assert [r.status_code for r in responses] == [201] * 40
    created = {r.json()["id"] for r in responses}
    listed = {t["id"] for t in await list_all_tasks(task_api)}
    assert created <= listed


async def test_a_deleted_task_leaves_the_list(task_api: httpx.AsyncClient) -> None:
    keep, drop = (
        (await create(task_api, "keep")).json()["id"],
        (await create(task_api, "drop")).json()["id"],
    )
    assert (await task_api.delete(f"/tasks/{drop}")).status_code == 204
    listed = {t["id"] for t in await list_all_tasks(task_api)}
    assert keep in listed
    assert drop not in listed


async def test_status_filter_and_pages(task_api: httpx.AsyncClient) -> None:
    marker = uuid4().hex[:8]
    ids = [(await create(task_api, f"{marker} {i}")).json()["id"] for i in range(5)]
    await task_api.put(f"/tasks/{ids[2]}/status", params={"status": "completed"})
    completed = await list_all_tasks(task_api, status="completed")
    assert ids[2] in {t["id"] for t in completed}
    assert all(t["status"] == "completed" for t in completed)
    first = (await task_api.get("/tasks", params={"limit": 2})).json()
    assert len(first["items"]) == 2
    second = (
        await task_api.get("/tasks", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert not {t["id"] for t in first["items"]} & {t["id"] for t in second["items"]}


async def test_idempotency_key_makes_a_retried_create_safe(task_api: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": uuid4().hex}
    first = await task_api.post("/tasks", json={"title": "Once"}, headers=key)
    again = await task_api.post("/tasks", json={"title": "Once"}, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    other = await task_api.post("/tasks", json={"title": "Other"}, headers=key)
    assert other.status_code == 422


async def test_a_retried_create_does_not_bring_back_a_deleted_task(
    task_api: httpx.AsyncClient, notification_service: httpx.AsyncClient
) -> None:
    """Reproduced from outside: the retry used to commit the task again (GET 200 after
    the DELETE). Now it answers 410 Gone and nothing changes."""
    key = {"Idempotency-Key": uuid4().hex}
    task_id = (await create(task_api, "Created, deleted, retried", headers=key)).json()["id"]
    assert (await task_api.delete(f"/tasks/{task_id}")).status_code == 204
    retried = await task_api.post(
        "/tasks", json={"title": "Created, deleted, retried"}, headers=key
    )
    assert retried.status_code == 410, retried.text
    assert "deleted" in retried.json()["detail"]
    assert (await task_api.get(f"/tasks/{task_id}")).status_code == 404
    assert task_id not in {t["id"] for t in await list_all_tasks(task_api)}

    async def both_events() -> list[str] | None:
        seen = [
            str(n["event_type"])
            for n in await notifications_for(notification_service, task_id, "activity")
        ]
        return seen if len(seen) >= 2 else None

    assert sorted(await eventually(both_events, what="created and deleted")) == [
        "task.created", "task.deleted",
    ]  # fmt: skip
