"""A delivery whose connection is reset between notification-service's sidecar and its
app (before the request reaches the app, after it did, or in the middle of the answer)
is retried as the resiliency policy says and recorded exactly once, never sent to the
dead-letter topic; a poison message still is. A proxy (harness.reset_proxy) sits
between the sidecar and the app and does the resets."""

from uuid import uuid4

import pytest

from harness.load import notification_lines
from harness.polling import eventually
from harness.reset_proxy import RESET_POINTS, ResetPoint
from harness.stack import Stack, log_lines, notification_client, task_api_client

pytestmark = pytest.mark.stack_variant(reset_proxies=("notification-service",))

DELIVERIES = "/events/task-events"


@pytest.mark.parametrize("point", RESET_POINTS)
async def test_a_reset_delivery_is_recorded_once_and_never_dead_lettered(
    own_stack: Stack, point: ResetPoint
) -> None:
    service = own_stack.notification_service
    assert service.proxy is not None
    assert service.app is not None
    proxy, app = service.proxy.process, service.app
    title = f"reset {point} {uuid4()}"
    await service.proxy.arm(point, DELIVERIES)
    async with task_api_client(own_stack) as api:
        created = await api.post("/tasks", json={"title": title})
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]

    async def reset() -> list[str]:
        return log_lines(proxy, f"RESET {point} POST {DELIVERIES}")

    [reset_line] = await eventually(reset, what=f"the proxy to reset a delivery ({point})")
    assert f"task={task_id}" in reset_line

    def dead_lettered() -> list[str]:
        return log_lines(app, f'DEAD-LETTER task.created "{title}"')

    async def settled() -> list[str]:
        """The sidecar has the app's SUCCESS for the event (relayed whole, or the status
        line of a reset answer), or the event was dead-lettered."""
        answered = [
            line
            for line in log_lines(proxy, f"task={task_id}")
            if "SUCCESS" in line and line.startswith(("relayed", "RESET mid-response"))
        ]
        return answered + dead_lettered()

    await eventually(settled, within=60, what="the sidecar to be done with the reset delivery")
    assert not dead_lettered(), "a reset delivery went to the dead-letter topic"
    await poison_message_is_dead_lettered(own_stack)
    # The poison message went to the dead-letter topic after the reset delivery was
    # settled: a dead letter of that delivery would be there by now.
    assert not dead_lettered(), "a reset delivery went to the dead-letter topic"
    assert notification_lines(app, "activity", "task.created")[task_id] == 1


async def poison_message_is_dead_lettered(stack: Stack) -> None:
    """Publish a message nobody can decode and wait for its dead letter."""
    message_id = str(uuid4())
    await stack.publish_raw(b"not an event", content_type="text/plain", cloudevent_id=message_id)

    async def its_dead_letter() -> list[object]:
        async with notification_client(stack) as notifications:
            response = await notifications.get("/notifications", params={"limit": 200})
        return [
            n
            for n in response.json()["items"]
            if n["kind"] == "dead-letter" and n["event_id"] == message_id
        ]

    await eventually(its_dead_letter, what="the poison message's dead letter")
