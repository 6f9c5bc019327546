"""task-api when its sidecar, its state store or its broker fails, on a stack of this
module's own (Redis is both; PostgreSQL and Kafka in the postgres-kafka profile)."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from harness.polling import eventually
from harness.stack import Stack, notification_client, notifications_for, task_api_client


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


async def test_state_store_down_means_503_and_every_acknowledged_task_survives(
    own_stack: Stack, api: httpx.AsyncClient
) -> None:
    acknowledged = [
        (await api.post("/tasks", json={"title": f"kept {i}"})).json() for i in range(5)
    ]

    own_stack.backend.state_store.stop()
    assert_unavailable(await api.get(f"/tasks/{acknowledged[0]['id']}"))
    assert_unavailable(await api.post("/tasks", json={"title": "Refused"}))

    async def not_ready() -> bool:
        return (await api.get("/ready")).status_code == 503

    await eventually(not_ready, within=10, what="task-api /ready to report 503")

    own_stack.backend.state_store.start()

    async def ready() -> bool:
        return (await api.get("/ready")).status_code == 200

    await eventually(ready, within=30, what="task-api to recover once the store is back")
    for task in acknowledged:
        assert (await api.get(f"/tasks/{task['id']}")).json() == task


async def test_events_flow_again_after_a_broker_restart(
    own_stack: Stack, api: httpx.AsyncClient, notifications: httpx.AsyncClient
) -> None:
    before = (await api.post("/tasks", json={"title": "Before the restart"})).json()

    async def recorded(task_id: str) -> list[dict[str, object]]:
        return await notifications_for(notifications, task_id, "activity")

    await eventually(lambda: recorded(before["id"]), within=30, what="the first event")
    own_stack.backend.broker.stop()
    # The outbox hands the event to the broker inside the transaction: no broker, no
    # write (and nothing acknowledged that could not be delivered).
    assert_unavailable(await api.post("/tasks", json={"title": "Refused"}))
    own_stack.backend.broker.start()

    async def created() -> dict[str, object] | None:
        response = await api.post("/tasks", json={"title": "After the restart"})
        return response.json() if response.status_code == 201 else None

    after = await eventually(created, within=60, what="a create once the broker is back")
    await eventually(lambda: recorded(str(after["id"])), within=60, what="the event after")


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
