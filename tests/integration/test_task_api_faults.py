"""task-api when its sidecar or Redis fails, on a stack of this module's own."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from harness.polling import eventually
from harness.processes import wait_until
from harness.stack import Stack, notification_client, notifications_for, redis_ping, task_api_client


@pytest.fixture
async def api(own_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with task_api_client(own_stack) as client:
        yield client


@pytest.fixture
async def notifications(own_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with notification_client(own_stack) as client:
        yield client


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    assert "detail" in response.json()


async def test_sidecar_down_means_503_then_recovery_without_restarting_the_app(
    own_stack: Stack, api: httpx.AsyncClient
) -> None:
    task_id = (await api.post("/tasks", json={"title": "Survives"})).json()["id"]
    sidecar = own_stack.task_api.sidecar
    assert sidecar is not None
    app_pid = own_stack.task_api.app.pid if own_stack.task_api.app else None

    sidecar.stop()
    assert_unavailable(await api.get(f"/tasks/{task_id}"))
    assert_unavailable(await api.post("/tasks", json={"title": "Refused"}))
    assert (await api.get("/ready")).status_code == 503
    assert (await api.get("/health")).status_code == 200

    sidecar.start()
    own_stack.task_api.wait_ready()
    assert (await api.get(f"/tasks/{task_id}")).json()["title"] == "Survives"
    assert own_stack.task_api.app is not None
    assert own_stack.task_api.app.pid == app_pid


async def test_redis_down_means_503_and_every_acknowledged_task_survives(
    own_stack: Stack, api: httpx.AsyncClient
) -> None:
    acknowledged = [
        (await api.post("/tasks", json={"title": f"kept {i}"})).json() for i in range(5)
    ]

    own_stack.redis.stop()
    assert_unavailable(await api.get(f"/tasks/{acknowledged[0]['id']}"))
    assert_unavailable(await api.post("/tasks", json={"title": "Refused"}))

    async def not_ready() -> bool:
        return (await api.get("/ready")).status_code == 503

    await eventually(not_ready, within=10, what="task-api /ready to report 503")

    own_stack.redis.start()
    wait_until(lambda: redis_ping(own_stack.redis_port), timeout=30, what="redis-server")

    async def ready() -> bool:
        return (await api.get("/ready")).status_code == 200

    await eventually(ready, within=30, what="task-api to recover once Redis is back")
    for task in acknowledged:
        assert (await api.get(f"/tasks/{task['id']}")).json() == task


async def test_an_event_survives_its_sidecar_crashing_right_after_the_201(
    own_stack: Stack, api: httpx.AsyncClient, notifications: httpx.AsyncClient
) -> None:
    sidecar = own_stack.task_api.sidecar
    assert sidecar is not None
    created = await api.post("/tasks", json={"title": "Crash-proof"})
    assert created.status_code == 201
    # The outbox relays about a second after the commit: this kill comes before it, so
    # the event can only arrive through the restarted sidecar.
    sidecar.kill()
    killed_at = datetime.now(UTC)
    task_id = created.json()["id"]
    sidecar.start()
    own_stack.task_api.wait_ready()

    async def delivered() -> list[dict[str, object]]:
        return await notifications_for(notifications, task_id, "activity")

    [notification] = await eventually(delivered, within=60, what="task.created after the crash")
    assert notification["event_type"] == "task.created"
    assert datetime.fromisoformat(str(notification["received_at"])) > killed_at
