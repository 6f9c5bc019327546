"""One request through every Dapr building block: state, pub/sub, service invocation
and secrets, on real daprd sidecars and a real Redis."""

from typing import Any

import httpx

from harness.polling import eventually
from harness.stack import Stack, notifications_for


async def test_a_created_task_is_stored_and_read_back(task_api: httpx.AsyncClient) -> None:
    created = await task_api.post("/tasks", json={"title": "Write the spec", "priority": 2})
    assert created.status_code == 201, created.text
    task = created.json()
    assert created.headers["Location"] == f"/tasks/{task['id']}"

    fetched = await task_api.get(f"/tasks/{task['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == task
    assert fetched.headers["ETag"] == created.headers["ETag"]


async def test_the_api_key_comes_from_the_secret_store(stack: Stack) -> None:
    # The harness generated a fresh key into the secrets file daprd reads: only a key
    # read through the Dapr secrets API can match it.
    async with httpx.AsyncClient(base_url=stack.task_api.url) as client:
        assert (await client.get("/tasks")).status_code == 401
        wrong = await client.get("/tasks", headers={"X-API-Key": "dev-task-api-key"})
        assert wrong.status_code == 401
        assert wrong.json() == {"detail": "missing or invalid X-API-Key"}
        right = await client.get("/tasks", headers={"X-API-Key": stack.api_key})
        assert right.status_code == 200


def test_task_api_learns_from_its_sidecar_which_store_it_has(stack: Stack) -> None:
    # Index writes skip a read only on a store whose ETags count versions (state.redis);
    # task-api asks the sidecar's metadata API rather than assuming it.
    assert stack.task_api.app is not None
    kind = "state.redis" if stack.backend.name == "redis" else "state.postgresql"
    assert f"state store 'statestore' is {kind}" in stack.task_api.app.log_tail(400)


async def test_a_create_reaches_notification_service_through_pubsub(
    task_api: httpx.AsyncClient, notification_service: httpx.AsyncClient
) -> None:
    task = (await task_api.post("/tasks", json={"title": "Publish me"})).json()

    async def activity() -> list[dict[str, Any]]:
        return await notifications_for(notification_service, task["id"], "activity")

    [notification] = await eventually(activity, what="the task.created activity notification")
    assert notification["event_type"] == "task.created"
    assert notification["title"] == "Publish me"


async def test_a_completion_invokes_notify_by_app_id(
    task_api: httpx.AsyncClient, notification_service: httpx.AsyncClient
) -> None:
    task = (await task_api.post("/tasks", json={"title": "Finish me", "priority": 3})).json()
    done = await task_api.put(f"/tasks/{task['id']}/status", params={"status": "completed"})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"

    async def notified() -> list[dict[str, Any]]:
        return await notifications_for(notification_service, task["id"], "notify")

    [notification] = await eventually(notified, what="the notify record of the completion")
    assert notification["message"] == (
        f'NOTIFY task.completed task={task["id"]} "Finish me" (priority 3)'
    )
