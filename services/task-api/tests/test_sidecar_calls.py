"""How many sidecar calls each operation makes (issue 27): every call is a round trip
through daprd to the store, and a status change made five (lease, read, commit, read
the lease back, delete it). A holder now reads its lease with the task and gives it back
in the transaction that commits its write."""

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from task_api_fakes import MemoryState

from task_api.errors import PreconditionFailed, TaskNotFound
from task_api.lease import lease_key
from task_api.records import TaskRecord
from task_api.task_index import PAGE_SIZE, SHARD_COUNT
from task_api.tasks import TaskService
from task_contracts import TaskCreate, TaskStatus, TaskUpdate


async def test_a_read_is_one_call(service: TaskService, state: MemoryState) -> None:
    created = await service.create(TaskCreate(title="T"))
    state.calls.clear()
    await service.get(created.task.id)
    assert state.calls == Counter(get=1)


async def test_a_create_is_two_calls_once_its_index_page_is_open(
    service: TaskService, state: MemoryState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index entry (one page write) and the transaction; only the first create in a
    shard reads its head, and one in PAGE_SIZE moves it."""
    ids = (uuid.UUID(int=SHARD_COUNT * n) for n in range(1, PAGE_SIZE + 1))  # one shard
    monkeypatch.setattr("task_api.tasks.uuid4", lambda: next(ids))
    await service.create(TaskCreate(title="opens the page"))
    for _ in range(PAGE_SIZE - 1):
        state.calls.clear()
        await service.create(TaskCreate(title="T"))
        assert state.calls == Counter(save=1, save_with_event=1)


Write = Callable[[TaskService, TaskRecord], Awaitable[object]]
WRITES: dict[str, tuple[Write, Counter[str]]] = {
    "status change": (
        lambda s, r: s.change_status(r.task.id, TaskStatus.COMPLETED, None),
        Counter(save=1, get_many=1, save_with_event=1),
    ),
    "update": (
        lambda s, r: s.update(r.task.id, TaskUpdate(title="U"), frozenset({r.revision})),
        Counter(save=1, get_many=1, save_with_event=1),
    ),
    # Nothing to commit: the lease is deleted at the version read with the task.
    "no change": (
        lambda s, r: s.change_status(r.task.id, TaskStatus.PENDING, None),
        Counter(save=1, get_many=1, delete=1),
    ),
}


@pytest.mark.parametrize("write", list(WRITES))
async def test_a_write_is_three_calls_and_leaves_no_lease(
    service: TaskService, state: MemoryState, write: str
) -> None:
    created = await service.create(TaskCreate(title="T"))
    state.calls.clear()
    act, calls = WRITES[write]
    await act(service, created)
    assert state.calls == calls
    assert lease_key(created.task.id) not in state.items


async def test_refused_writes_release_their_lease_in_one_call(
    service: TaskService, state: MemoryState
) -> None:
    created = await service.create(TaskCreate(title="T"))
    state.calls.clear()
    with pytest.raises(PreconditionFailed):
        await service.update(created.task.id, TaskUpdate(title="U"), frozenset({"other"}))
    assert state.calls == Counter(save=1, get_many=1, delete=1)
    assert lease_key(created.task.id) not in state.items
    await service.delete(created.task.id, None)
    missing = created.task.id
    state.calls.clear()
    with pytest.raises(TaskNotFound):
        await service.change_status(missing, TaskStatus.COMPLETED, None)
    assert state.calls == Counter(save=1, get_many=1, delete=1)
    assert lease_key(missing) not in state.items


async def test_a_delete_gives_its_lease_back_with_the_tombstone(
    service: TaskService, state: MemoryState
) -> None:
    created = await service.create(TaskCreate(title="T"))
    state.calls.clear()
    await service.delete(created.task.id, None)
    # Lease, read, commit; then the index entry's page is rewritten (this process wrote
    # it last and knows its version).
    assert state.calls == Counter(save=2, get_many=1, save_with_event=1)
    assert lease_key(created.task.id) not in state.items
