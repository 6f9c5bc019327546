"""Keys that must expire do so by what they record, not only by their TTL (issue 26,
item 6): state.redis sets a key and its TTL in two commands, and when the second is
lost the key stays. A task lease stored without its TTL used to lock the task for
good (every write 409), and an idempotency key to be remembered for good."""

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from task_api_fakes import MemoryState

from dapr_service_kit.testing import Clock
from task_api.errors import TaskBusy
from task_api.lease import LEASE_TTL_SECONDS, lease_key, task_lease
from task_api.ports import InfrastructureUnavailable
from task_api.tasks import IDEMPOTENCY_TTL_SECONDS, TaskService
from task_contracts import TaskCreate, TaskUpdate


class WallClock:
    """Seconds since the epoch, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class TtlLosingState(MemoryState):
    """Every key is stored without its TTL, as when the EXPIRE that state.redis sends
    after its write is lost. Every read yields once more before it returns, so that
    racing writers interleave between their read and their write."""

    read_yields: int = 2

    def _expire_in(self, key: str, ttl_seconds: int | None) -> None:
        pass


@pytest.fixture(autouse=True)
def short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("task_api.lease.LEASE_WAIT_SECONDS", 0.05)


async def test_a_lease_stored_without_its_ttl_is_taken_over_after_its_own_expiry() -> None:
    state, clock = TtlLosingState(), WallClock()
    task_id = uuid4()
    # Its process dies: never released (kept referenced, or collecting the generator
    # would run its finally).
    dead_holder = task_lease(state, task_id, clock=clock)
    await dead_holder.__aenter__()

    with pytest.raises(TaskBusy):
        async with task_lease(state, task_id, clock=clock):
            pass
    clock.now += LEASE_TTL_SECONDS + 1
    state.advance(LEASE_TTL_SECONDS + 1)
    assert await state.get(lease_key(task_id)) is not None  # no TTL: the key is there

    async with task_lease(state, task_id, clock=clock):
        pass
    assert await state.get(lease_key(task_id)) is None  # and the new holder released it


async def test_writes_of_a_task_whose_lease_lost_its_ttl_succeed_after_its_expiry() -> None:
    state, clock = TtlLosingState(), WallClock()
    service = TaskService(state, clock=Clock(), lease_clock=clock)
    created = await service.create(TaskCreate(title="T"))
    dead_holder = task_lease(state, created.task.id, clock=clock)
    await dead_holder.__aenter__()

    with pytest.raises(TaskBusy):
        await service.update(created.task.id, TaskUpdate(title="too soon"), None)
    clock.now += LEASE_TTL_SECONDS + 1
    updated = await service.update(created.task.id, TaskUpdate(title="U"), None)
    assert updated.task.title == "U"


async def test_waiters_on_an_expired_lease_take_it_over_one_at_a_time() -> None:
    """Each waiter reads the expired lease before any of them writes: only a takeover
    conditional on the version read lets exactly one of them in."""
    state, clock = TtlLosingState(), WallClock()
    task_id = uuid4()
    # Kept referenced: a collected generator would run its finally, releasing the lease.
    dead_holder = task_lease(state, task_id, clock=clock)
    await dead_holder.__aenter__()
    clock.now += LEASE_TTL_SECONDS + 1
    holding = most = 0

    async def write() -> None:
        nonlocal holding, most
        async with task_lease(state, task_id, clock=clock):
            holding += 1
            most = max(most, holding)
            for _ in range(10):
                await asyncio.sleep(0)
            holding -= 1

    outcomes = await asyncio.gather(*(write() for _ in range(4)), return_exceptions=True)
    assert most == 1
    assert all(outcome is None or isinstance(outcome, TaskBusy) for outcome in outcomes)


class AnswerLostState(MemoryState):
    """A lease write lands, and then its caller hears `error` instead of the answer."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    async def save(self, key: str, data: bytes, **kwargs: Any) -> None:
        await super().save(key, data, **kwargs)
        if key.startswith("lease:"):
            raise self.error


@pytest.mark.parametrize(
    "error",
    [InfrastructureUnavailable("deadline exceeded"), asyncio.CancelledError()],
    ids=["deadline", "cancelled"],
)
async def test_a_lease_whose_save_failed_after_landing_is_released(error: BaseException) -> None:
    """The save was outside the try/finally: a lease written whose answer was lost
    stayed until its TTL (and for good without one)."""
    state = AnswerLostState(error)
    task_id = uuid4()
    with pytest.raises(type(error)):
        async with task_lease(state, task_id):
            pytest.fail("the lease is not held")
    assert await state.get(lease_key(task_id)) is None


async def test_a_lease_refused_is_not_released() -> None:
    """A writer that never held the lease leaves the holder's alone."""
    state = MemoryState()
    task_id = uuid4()
    async with task_lease(state, task_id):
        held = await state.get(lease_key(task_id))
        with pytest.raises(TaskBusy):
            async with task_lease(state, task_id):
                pass
        assert await state.get(lease_key(task_id)) == held


# --- idempotency keys ----------------------------------------------------------------


async def test_an_idempotency_key_stored_without_its_ttl_expires_all_the_same() -> None:
    state, clock = TtlLosingState(), Clock()
    service = TaskService(state, clock=clock)
    first = await service.create(TaskCreate(title="Once"), idempotency_key="k")
    assert await service.create(TaskCreate(title="Once"), idempotency_key="k") == first

    clock.now += timedelta(seconds=IDEMPOTENCY_TTL_SECONDS + 1)
    second = await service.create(TaskCreate(title="Another day"), idempotency_key="k")
    assert second.task.id != first.task.id
    assert await service.create(TaskCreate(title="Another day"), idempotency_key="k") == second


async def test_retries_racing_for_an_expired_idempotency_key_create_one_task() -> None:
    state, clock = TtlLosingState(), Clock()
    service = TaskService(state, clock=clock)
    await service.create(TaskCreate(title="Once"), idempotency_key="k")
    clock.now += timedelta(seconds=IDEMPOTENCY_TTL_SECONDS + 1)
    published = len(state.published)

    request = TaskCreate(title="Again")
    records = await asyncio.gather(
        *(service.create(request, idempotency_key="k") for _ in range(4)),
        return_exceptions=True,
    )
    created = {r.task.id for r in records if not isinstance(r, BaseException)}
    assert len(created) == 1, records
    assert len(state.published) == published + 1
