"""What a client sends in `baggage` stays out of the events its request causes: the
outbox copies a write's metadata into the event's CloudEvent, and the trace context the
app put there carried the client's baggage with it. Only the W3C trace context goes.

The CloudEvent is read where notification-service's sidecar reads it from, the
task-events stream in Redis, once notification-service has recorded its delivery."""

import httpx
import pytest

from harness.backends import only_on_redis
from harness.polling import eventually
from harness.stack import RunningStack, Stack, notifications_for, task_events_of

pytestmark = only_on_redis("reads the CloudEvent from the task-events stream in Redis")

BAGGAGE = "user.id=alice,secret=hunter2"


async def test_a_clients_baggage_is_in_no_event(
    stack: RunningStack, task_api: httpx.AsyncClient, notification_service: httpx.AsyncClient
) -> None:
    if not isinstance(stack, Stack):
        pytest.skip("reads the stack's own Redis")
    created = await task_api.post(
        "/tasks", json={"title": "Sent with a client's context"}, headers={"baggage": BAGGAGE}
    )
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    changed = await task_api.patch(
        f"/tasks/{task_id}", json={"priority": 3}, headers={"baggage": BAGGAGE}
    )
    assert changed.status_code == 200, changed.text

    async def delivered() -> list[dict[str, object]] | None:
        found = await notifications_for(notification_service, task_id, "activity")
        return found if len(found) == 2 else None

    await eventually(delivered, what="notification-service to record both events")
    events = task_events_of(stack, task_id)
    assert len(events) == 2, events
    for event in events:
        assert "traceparent" in event, event  # the trace context still travels
        assert '"baggage"' not in event, event
        assert "hunter2" not in event, event
