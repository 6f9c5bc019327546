"""The event flows between the services, on real sidecars and Redis: activity feed,
completion notifications, duplicates, poison messages and unknown event types."""

import json
from typing import Any
from uuid import uuid4

import httpx

from harness.polling import eventually
from harness.stack import RunningStack, notifications_for
from task_contracts import EventType, TaskEvent, TaskStatus


async def dead_letters(client: httpx.AsyncClient, event_id: str) -> list[dict[str, Any]]:
    items = (await client.get("/notifications", params={"limit": 200})).json()["items"]
    return [n for n in items if n["kind"] == "dead-letter" and n["event_id"] == event_id]


async def test_a_completion_is_notified_exactly_once(
    stack: RunningStack, task_api: httpx.AsyncClient, notification_service: httpx.AsyncClient
) -> None:
    task = (await task_api.post("/tasks", json={"title": "Notify me once"})).json()
    await task_api.put(f"/tasks/{task['id']}/status", params={"status": "completed"})

    async def notified() -> list[dict[str, Any]]:
        return await notifications_for(notification_service, task["id"], "notify")

    await eventually(notified, what="the notify record")

    async def delivered() -> list[str]:
        return stack.app_log_lines("task-api", f"notify for task {task['id']} delivered")

    # task-api's subscriber has seen notify succeed: every retry of the invocation is
    # behind it, and the completion is acknowledged.
    await eventually(delivered, what="task-api to see notify delivered")
    assert len(await notified()) == 1
    lines = stack.app_log_lines("notification-service", f"NOTIFY task.completed task={task['id']}")
    assert len(lines) == 1, lines


async def test_the_same_event_published_twice_is_recorded_once(
    stack: RunningStack, notification_service: httpx.AsyncClient
) -> None:
    event = TaskEvent(
        event_type=EventType.CREATED, task_id=uuid4(), title="Twice", status=TaskStatus.PENDING
    )
    for _ in range(2):
        await stack.publish_raw(event.model_dump_json().encode(), content_type="application/json")

    async def recorded() -> list[dict[str, Any]]:
        return await notifications_for(notification_service, str(event.task_id), "activity")

    await eventually(recorded, what="the activity record")

    async def second_delivery_seen() -> list[str]:
        return stack.app_log_lines("notification-service", f"duplicate activity {event.event_id}")

    # The positive signal that the second copy was handled: then nothing may have changed.
    await eventually(second_delivery_seen, what="the second delivery to be handled")
    assert len(await recorded()) == 1


async def test_a_poison_message_lands_on_the_dead_letter_topic(
    stack: RunningStack, notification_service: httpx.AsyncClient
) -> None:
    message_id = str(uuid4())
    await stack.publish_raw(
        b"this is not an event", content_type="text/plain", cloudevent_id=message_id
    )

    [dead] = await eventually(
        lambda: dead_letters(notification_service, message_id), what="the dead-letter record"
    )
    assert dead["message"].startswith("DEAD-LETTER ")


async def test_an_unknown_event_type_is_acknowledged(
    stack: RunningStack, notification_service: httpx.AsyncClient
) -> None:
    message_id = str(uuid4())
    event = {
        "event_id": str(uuid4()),
        "event_type": "task.archived",
        "task_id": str(uuid4()),
        "title": "From the future",
        "status": "pending",
        "timestamp": "2030-01-01T00:00:00Z",
        "schema_version": 2,
    }
    await stack.publish_raw(
        json.dumps(event).encode(), content_type="application/json", cloudevent_id=message_id
    )

    async def logged() -> list[str]:
        return stack.app_log_lines(
            "notification-service", "ignoring unknown event type task.archived"
        )

    await eventually(logged, what="the unknown type to be logged")
    # A known event published after it and recorded: the unknown one was answered
    # before, and a retry or a dead letter would have followed as quickly.
    after = TaskEvent(
        event_type=EventType.CREATED, task_id=uuid4(), title="After", status=TaskStatus.PENDING
    )
    await stack.publish_raw(after.model_dump_json().encode(), content_type="application/json")
    await eventually(
        lambda: notifications_for(notification_service, str(after.task_id), "activity"),
        what="the event published after it",
    )
    # Acknowledged: not retried into the dead-letter topic, not recorded, logged once.
    assert await dead_letters(notification_service, message_id) == []
    assert await notifications_for(notification_service, str(event["task_id"]), "activity") == []
    assert len(await logged()) == 1
