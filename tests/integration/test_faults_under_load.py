"""Crashes under load, on a stack of this module's own: nothing acknowledged is lost,
nothing is notified twice, and clients only ever see clean answers."""

import asyncio
from collections.abc import Callable

from harness.load import (
    Outcomes,
    audit_acknowledged_creates,
    create_tasks,
    notification_lines,
    progress,
)
from harness.polling import eventually
from harness.processes import ManagedProcess
from harness.stack import Stack, task_api_client


async def kill_mid_load(
    stack: Stack, process: ManagedProcess, failed: Callable[[Outcomes], int]
) -> Outcomes:
    """Create tasks from 8 clients; SIGKILL `process` once 30 were acknowledged, start it
    again once `failed` counts 5 failed requests, stop when 30 more were acknowledged."""
    outcomes, stop = Outcomes(), asyncio.Event()
    async with task_api_client(stack) as api:
        load = asyncio.create_task(
            create_tasks(api, outcomes, stop, workers=8, prefix=process.name)
        )
        await eventually(progress(lambda: outcomes.statuses[201] >= 30), what="load to run")
        process.kill()
        await eventually(progress(lambda: failed(outcomes) >= 5), what="failing requests")
        process.start()
        await asyncio.to_thread(stack.task_api.wait_ready)
        before = outcomes.statuses[201]
        await eventually(progress(lambda: outcomes.statuses[201] >= before + 30), what="recovery")
        stop.set()
        await load
    return outcomes


async def test_task_api_sidecar_killed_mid_load(own_stack: Stack) -> None:
    assert own_stack.task_api.sidecar is not None
    outcomes = await kill_mid_load(own_stack, own_stack.task_api.sidecar, lambda o: o.statuses[503])
    assert set(outcomes.statuses) <= {201, 503}, outcomes.statuses
    assert not outcomes.errors, outcomes.errors
    await audit_acknowledged_creates(own_stack, outcomes.acknowledged)


async def test_task_api_app_killed_mid_load(own_stack: Stack) -> None:
    assert own_stack.task_api.app is not None
    outcomes = await kill_mid_load(
        own_stack, own_stack.task_api.app, lambda o: sum(o.errors.values())
    )
    # Requests in flight when the process died end as transport errors, never as 5xx.
    assert set(outcomes.statuses) <= {201}, outcomes.statuses
    assert set(outcomes.errors) <= {"ConnectError", "ReadError", "RemoteProtocolError"}
    await audit_acknowledged_creates(own_stack, outcomes.acknowledged)


async def test_notification_service_killed_while_completions_flow(own_stack: Stack) -> None:
    service = own_stack.notification_service
    assert service.app is not None
    assert service.sidecar is not None
    completed: list[str] = []
    async with task_api_client(own_stack) as api:
        created = await asyncio.gather(
            *(api.post("/tasks", json={"title": f"complete me {i}"}) for i in range(45))
        )
        pending = [r.json()["id"] for r in created]

        async def complete_all() -> None:
            async def worker() -> None:
                while pending:
                    task_id = pending.pop()
                    response = await api.put(
                        f"/tasks/{task_id}/status", params={"status": "completed"}
                    )
                    assert response.status_code == 200, response.text
                    completed.append(task_id)

            await asyncio.gather(*(worker() for _ in range(3)))

        stream = asyncio.create_task(complete_all())
        await eventually(progress(lambda: len(completed) >= 10), what="completions to flow")
        service.app.kill()
        service.sidecar.kill()
        await eventually(
            progress(lambda: len(completed) >= 25), what="completions during the outage"
        )
        service.sidecar.start()
        service.app.start()
        await asyncio.to_thread(service.wait_ready)
        await stream

    app = service.app

    def all_notified() -> bool:
        return set(completed) <= set(notification_lines(app, "notify", "task.completed"))

    await eventually(progress(all_notified), within=120, what="every completion notified")
    counts = notification_lines(app, "notify", "task.completed")
    assert {t: counts[t] for t in completed} == dict.fromkeys(completed, 1)
