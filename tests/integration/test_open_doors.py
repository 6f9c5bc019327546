"""No door left open, on the real stack: every route of both services' OpenAPI
documents is called without any credential, with a real task behind it. A 2xx may come
only from the probes and the API's description, and never carries task data; a route
added later without the key fails here."""

import re
import uuid
from typing import Any

import httpx
import pytest

from harness.polling import eventually
from harness.stack import RunningStack, notifications_for

# The only routes that answer a caller without credentials.
OPEN = {"/health", "/ready", "/openapi.json", "/docs", "/docs/oauth2-redirect"}
REFUSAL = {"detail": "missing or invalid X-API-Key"}


@pytest.fixture(scope="module")
def title() -> str:
    return f"sweep {uuid.uuid4()}"


async def known_task(
    task_api: httpx.AsyncClient, notification_service: httpx.AsyncClient, title: str
) -> dict[str, Any]:
    """A task that task-api lists and notification-service's feed shows, so that an
    open door would hand it out."""
    created = await task_api.post("/tasks", json={"title": title, "priority": 4})
    assert created.status_code == 201, created.text
    task: dict[str, Any] = created.json()

    async def in_feed() -> list[dict[str, object]]:
        return await notifications_for(notification_service, task["id"], "activity")

    await eventually(in_feed, what="the task in notification-service's feed")
    return task


def operations(document: dict[str, Any], task_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) of every documented operation, each path parameter
    filled with the real task's id."""
    found = []
    for documented, methods in document["paths"].items():
        path = re.sub(r"\{[^}]+\}", task_id, documented)
        for method, operation in methods.items():
            found.append((method.upper(), path, {**operation, "path": documented}))
    return found


@pytest.mark.parametrize("app", ["task-api", "notification-service"])
async def test_without_credentials_no_route_hands_out_task_data(
    stack: RunningStack,
    task_api: httpx.AsyncClient,
    notification_service: httpx.AsyncClient,
    title: str,
    app: str,
) -> None:
    task = await known_task(task_api, notification_service, title)
    endpoint = stack.task_api if app == "task-api" else stack.notification_service
    async with httpx.AsyncClient(base_url=endpoint.url, timeout=30.0) as anonymous:
        document = (await anonymous.get("/openapi.json")).json()
        calls = operations(document, task["id"])
        assert any(o["path"] not in OPEN for _, _, o in calls), "nothing but probes documented"
        # A body and query that would pass validation wherever they can, so that a route
        # without a guard would answer 2xx rather than 422.
        body = {"title": "x", "status": "completed", "event": {"task_id": task["id"]}}
        for method, path, operation in calls:
            response = await anonymous.request(
                method, path, params={"limit": 200, "status": "completed"}, json=body
            )
            where = f"{app} {method} {operation['path']}: {response.status_code} {response.text}"
            for task_data in (task["id"], title):
                assert task_data not in response.text, where
            if operation["path"] in OPEN:
                continue
            assert response.status_code == 401, where
            if operation.get("security") == [{"ApiKey": []}]:
                assert response.json() == REFUSAL, where
    async with httpx.AsyncClient(base_url=endpoint.url, timeout=30.0) as anonymous:
        for path in ("/health", "/ready", "/docs"):
            assert (await anonymous.get(path)).status_code == 200, path
