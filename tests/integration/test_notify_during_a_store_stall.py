"""A completion while notification-service's state store stalls for longer than a
`notify` call may take (task-api's sidecar gives it 3 s, then retries) and longer than
one store call's deadline (5 s): its NOTIFY line is written exactly once, never zero.

The retry used to be answered "duplicate" at once, because the first call was still
recording; task-api acknowledged the completion, the first call then failed at its
deadline, and the line was never written."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.backends import only_on_redis
from harness.deployed import is_external
from harness.load import notified
from harness.polling import eventually
from harness.processes import ManagedProcess
from harness.stack import Stack, log_lines, task_api_client
from harness.stall_proxy import StallProxy, route_state_store

pytestmark = only_on_redis("stalls notification-service's connections to Redis")


@pytest.fixture(scope="module")
def stalling_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, StallProxy]]:
    """A stack whose notification-service reaches its state store (only that: its
    pub/sub and task-api's store are direct) through a StallProxy."""
    if is_external():
        pytest.skip("stalls a part of the stack: only on a stack of the harness's own")
    stack = Stack(Path(tmp_path_factory.mktemp("stalling-store")), tracing=False)
    assert stack.backend.redis is not None
    proxy = StallProxy(stack.backend.redis.port)
    route_state_store(stack, stack.notification_service, proxy.address)
    proxy.start()
    try:
        stack.start()
        yield stack, proxy
    except Exception:
        print(stack.log_tails(), file=sys.stderr)
        raise
    finally:
        stack.stop()
        proxy.stop()


def lines(process: ManagedProcess | None, needle: str) -> list[str]:
    assert process is not None
    return log_lines(process, needle)


async def test_a_completion_during_a_store_stall_is_notified_exactly_once(
    stalling_store: tuple[Stack, StallProxy],
) -> None:
    stack, proxy = stalling_store
    task_api_app, notification_app = stack.task_api.app, stack.notification_service.app
    try:
        async with task_api_client(stack) as api:
            task = (
                await api.post("/tasks", json={"title": "Through a stall", "priority": 4})
            ).json()

            async def created_recorded() -> bool:
                return notified(stack, "activity", "task.created")[task["id"]] == 1

            await eventually(created_recorded, what="the create recorded before the stall")
            proxy.stall()
            try:
                done = await api.put(f"/tasks/{task['id']}/status", params={"status": "completed"})
                assert done.status_code == 200

                async def answered_while_stalled() -> bool:
                    # task-api's subscriber has heard back from notify (delivered, or
                    # failed and to be redelivered), and the first attempt has failed by
                    # now: the stall outlived a store call's deadline, or daprd's Redis
                    # client gave up first (then the attempt ends INTERNAL).
                    attempt_failed = lines(notification_app, "DEADLINE_EXCEEDED") or any(
                        "not recorded" in line for line in lines(notification_app, "seen:notify:")
                    )
                    return bool(
                        lines(task_api_app, f"notify for task {task['id']} ") and attempt_failed
                    )

                await eventually(
                    answered_while_stalled, within=60, what="notify answered during the stall"
                )
            finally:
                proxy.resume()

        async def delivered() -> list[str]:
            return lines(task_api_app, f"notify for task {task['id']} delivered")

        # Redelivered until notify succeeds (after the circuit breaker's 15 s, at most).
        await eventually(delivered, within=90, what="task-api to see notify delivered")

        async def notify_line() -> bool:
            return notified(stack, "notify", "task.completed")[task["id"]] >= 1

        await eventually(notify_line, within=10, what="the NOTIFY line of the completion")
        assert notified(stack, "notify", "task.completed")[task["id"]] == 1

        async def activity_line() -> bool:
            return notified(stack, "activity", "task.completed")[task["id"]] >= 1

        # The pub/sub path went through the same stall: its line once too.
        await eventually(activity_line, within=60, what="the ACTIVITY line of the completion")
        assert notified(stack, "activity", "task.completed")[task["id"]] == 1
        assert notified(stack, "notify", "task.completed")[task["id"]] == 1
    except BaseException:
        print(stack.log_tails(60), file=sys.stderr)
        raise
