"""A completion while notification-service (app and sidecar) is down is notified once
it is back, exactly once."""

from typing import Any

from harness.polling import eventually
from harness.stack import Stack, log_lines, notification_client, notifications_for, task_api_client


async def test_a_completion_during_an_outage_is_notified_once_after_it(own_stack: Stack) -> None:
    service = own_stack.notification_service
    assert service.app is not None
    assert service.sidecar is not None
    async with task_api_client(own_stack) as api:
        task = (await api.post("/tasks", json={"title": "Wait for me", "priority": 5})).json()
        service.app.stop()
        service.sidecar.stop()
        done = await api.put(f"/tasks/{task['id']}/status", params={"status": "completed"})
        assert done.status_code == 200
        assert own_stack.task_api.app is not None
        task_api_app = own_stack.task_api.app

        async def notify_failed() -> list[str]:
            return log_lines(task_api_app, f"notify for task {task['id']} failed")

        # task-api's subscriber has tried during the outage, failed and asked for a retry.
        await eventually(notify_failed, within=30, what="task-api to try notify and fail")
        service.sidecar.start()
        service.app.start()
        service.wait_ready()

    async with notification_client(own_stack) as notifications:

        async def notified() -> list[dict[str, Any]]:
            return await notifications_for(notifications, task["id"], "notify")

        await eventually(notified, within=90, what="the notify record after the outage")

        async def delivered() -> list[str]:
            return log_lines(task_api_app, f"notify for task {task['id']} delivered")

        # The retries of the completion have ended: nothing repeats it now.
        await eventually(delivered, what="task-api to see notify delivered")
        assert len(await notified()) == 1
    lines = log_lines(service.app, f"NOTIFY task.completed task={task['id']}")
    assert lines == [lines[0]]
    assert lines[0].endswith('"Wait for me" (priority 5)')
