"""The outbox relay has a worker pool of its own: completions that task-api's sidecar
retries during a notification-service outage must not hold back other tasks' events.
On one shared pool they held every worker, and no event was relayed until the outage
ended."""

from typing import Any

import pytest

from harness.backends import only_on_redis
from harness.polling import eventually
from harness.stack import Stack, log_lines, task_api_client, task_events_of

# Two subscription workers per sidecar: two completions retrying notify hold them all.
# (Kafka has no such pool: a partition's deliveries are sequential, its partitions are
# its concurrency; components/postgres-kafka.)
pytestmark = [
    pytest.mark.stack_variant(component_metadata={"pubsub": {"concurrency": "2"}}),
    only_on_redis("pubsub.redis' worker pool (concurrency) and its streams"),
]


async def test_events_are_relayed_while_every_subscription_worker_retries(
    own_stack: Stack,
) -> None:
    service = own_stack.notification_service
    assert service.app is not None
    assert service.sidecar is not None
    assert own_stack.task_api.app is not None
    task_api_app = own_stack.task_api.app
    async with task_api_client(own_stack) as api:
        service.app.stop()
        service.sidecar.stop()
        completed: list[dict[str, Any]] = []
        for i in range(3):
            task = (await api.post("/tasks", json={"title": f"Completed {i}"})).json()
            await api.put(f"/tasks/{task['id']}/status", params={"status": "completed"})
            completed.append(task)

        async def both_workers_held() -> bool:
            retrying = [
                t for t in completed if log_lines(task_api_app, f"notify for task {t['id']} failed")
            ]
            return len(retrying) >= 2

        await eventually(
            both_workers_held,
            within=30,
            what="two completions retrying notify, holding both workers",
        )
        task = (await api.post("/tasks", json={"title": "Relayed all the same"})).json()

        async def relayed() -> list[str]:
            return task_events_of(own_stack, task["id"])

        await eventually(relayed, within=20, what="the new task's task.created on task-events")
        service.sidecar.start()
        service.app.start()
        service.wait_ready()
