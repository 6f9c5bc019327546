"""A second relay joining under load: task-api's sidecars share the outbox's internal
topic in one consumer group, and a replica that starts (a scale-out, a rollout) makes the
group rebalance. Every relay handler in flight must end with its context so the group can
rejoin: on Kafka, stock daprd's relay kept retrying on the cancelled context, the member
never rejoined, and the group stood still for its 60 s rebalance timeout."""

import asyncio
import time

import pytest

from harness.load import Outcomes, audit_acknowledged_creates, create_tasks, notified
from harness.stack import Stack, task_api_client

pytestmark = pytest.mark.stack_variant(replicas=2)

LONGEST_GAP = 15.0


def created_notifications(stack: Stack) -> int:
    return sum(notified(stack, "activity", "task.created").values())


class GapMeter:
    """The longest time without a new notification, sampled as the test goes."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.count = created_notifications(stack)
        self.last_news = time.monotonic()
        self.longest = 0.0

    def sample(self) -> None:
        count, now = created_notifications(self.stack), time.monotonic()
        if count > self.count:
            self.count, self.last_news = count, now
        self.longest = max(self.longest, now - self.last_news)

    async def watch(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.sample()
            await asyncio.sleep(0.2)


async def test_a_relay_joining_under_load_pauses_delivery_briefly(own_stack: Stack) -> None:
    joining = own_stack.replicas["task-api"][1]
    for process in joining.processes():
        process.stop()
    outcomes, stop = Outcomes(), asyncio.Event()
    async with task_api_client(own_stack) as api:
        load = asyncio.create_task(create_tasks(api, outcomes, stop, workers=2, prefix="join"))
        # Delivery under way with one relay (the group has settled after the stop).
        warm_up = GapMeter(own_stack)
        await warm_up.watch(10)
        assert warm_up.count > 0, "nothing delivered with one relay"
        gaps = GapMeter(own_stack)
        for process in joining.processes():
            process.start()
        await asyncio.gather(gaps.watch(40), asyncio.to_thread(joining.wait_ready))
        stop.set()
        await load
    print(f"longest delivery gap after the second relay joined: {gaps.longest:.1f} s")
    assert gaps.longest <= LONGEST_GAP
    await audit_acknowledged_creates(own_stack, outcomes.acknowledged)
