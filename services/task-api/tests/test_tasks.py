"""TaskService on in-memory ports: what each operation stores and publishes."""

import asyncio
from collections.abc import Mapping, Sequence
from uuid import uuid4

import pytest
from task_api_fakes import MemoryState

from dapr_service_kit.testing import Clock
from task_api.errors import (
    IdempotencyKeyReused,
    InvalidCursor,
    PreconditionFailed,
    TaskBusy,
    TaskGone,
    TaskNotFound,
)
from task_api.lease import LEASE_TTL_SECONDS, lease_key, task_lease
from task_api.ports import InfrastructureUnavailable, Versioned
from task_api.settings import Settings
from task_api.tasks import TaskService
from task_contracts import EventType, TaskCreate, TaskStatus, TaskUpdate


@pytest.fixture
def service(state: MemoryState) -> TaskService:
    return TaskService(state, clock=Clock())


async def test_create_stores_and_publishes_created(
    service: TaskService, state: MemoryState
) -> None:
    record = await service.create(TaskCreate(title="Write the spec", priority=2))
    assert (await service.get(record.task.id)) == record
    [event] = state.published
    assert event.event_type is EventType.CREATED
    assert (event.task_id, event.title, event.priority) == (record.task.id, "Write the spec", 2)
    assert record.task.status is TaskStatus.PENDING


async def test_unknown_task_is_not_found(service: TaskService) -> None:
    with pytest.raises(TaskNotFound):
        await service.get(uuid4())


async def test_update_publishes_updated_and_changes_the_revision(
    service: TaskService, state: MemoryState
) -> None:
    created = await service.create(TaskCreate(title="Draft"))
    updated = await service.update(
        created.task.id, TaskUpdate(title="Final"), frozenset({created.revision})
    )
    assert updated.task.title == "Final"
    assert updated.revision != created.revision
    assert updated.task.updated_at > created.task.updated_at
    assert [e.event_type for e in state.published] == [EventType.CREATED, EventType.UPDATED]


async def test_update_that_changes_nothing_publishes_nothing(
    service: TaskService, state: MemoryState
) -> None:
    created = await service.create(TaskCreate(title="Same", priority=3))
    again = await service.update(created.task.id, TaskUpdate(priority=3), None)
    assert again == created
    assert len(state.published) == 1


async def test_description_can_be_cleared(service: TaskService) -> None:
    created = await service.create(TaskCreate(title="T", description="something"))
    cleared = await service.update(created.task.id, TaskUpdate(description=None), None)
    assert cleared.task.description is None


async def test_stale_if_match_is_refused_and_changes_nothing(
    service: TaskService, state: MemoryState
) -> None:
    created = await service.create(TaskCreate(title="T"))
    await service.update(created.task.id, TaskUpdate(title="U"), frozenset({created.revision}))
    with pytest.raises(PreconditionFailed):
        await service.update(created.task.id, TaskUpdate(title="V"), frozenset({created.revision}))
    assert (await service.get(created.task.id)).task.title == "U"
    assert len(state.published) == 2


async def test_status_change_publishes_the_status_event(
    service: TaskService, state: MemoryState
) -> None:
    created = await service.create(TaskCreate(title="T"))
    for status in (TaskStatus.IN_PROGRESS, TaskStatus.COMPLETED, TaskStatus.PENDING):
        changed = await service.change_status(created.task.id, status, None)
        assert changed.task.status is status
    assert [e.event_type for e in state.published[1:]] == [
        EventType.IN_PROGRESS,
        EventType.COMPLETED,
        EventType.PENDING,
    ]
    assert state.published[2].status is TaskStatus.COMPLETED


async def test_setting_the_current_status_again_publishes_nothing(
    service: TaskService, state: MemoryState
) -> None:
    created = await service.create(TaskCreate(title="T"))
    await service.change_status(created.task.id, TaskStatus.PENDING, None)
    assert len(state.published) == 1


async def test_delete_leaves_a_tombstone_that_reads_as_absent(
    service: TaskService, state: MemoryState
) -> None:
    created = await service.create(TaskCreate(title="Gone soon"))
    await service.delete(created.task.id, None)
    with pytest.raises(TaskNotFound):
        await service.get(created.task.id)
    with pytest.raises(TaskNotFound):
        await service.delete(created.task.id, None)
    assert state.published[-1].event_type is EventType.DELETED
    assert state.published[-1].title == "Gone soon"
    assert (await service.list(status=None, limit=10, cursor=None)).items == []
    assert any(ttl > 0 for ttl in state.ttls.values())


async def test_list_is_newest_first_and_pages_with_a_cursor(service: TaskService) -> None:
    titles = [f"task {i}" for i in range(7)]
    for title in titles:
        await service.create(TaskCreate(title=title))
    seen: list[str] = []
    cursor = None
    while True:
        page = await service.list(status=None, limit=3, cursor=cursor)
        seen += [t.title for t in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == list(reversed(titles))


async def test_list_filters_by_status(service: TaskService) -> None:
    ids = [(await service.create(TaskCreate(title=f"t{i}"))).task.id for i in range(5)]
    for task_id in ids[1::2]:
        await service.change_status(task_id, TaskStatus.COMPLETED, None)
    page = await service.list(status=TaskStatus.COMPLETED, limit=10, cursor=None)
    assert [t.id for t in page.items] == [ids[3], ids[1]]
    assert page.next_cursor is None


async def test_list_skips_index_entries_of_tasks_never_committed(
    service: TaskService, state: MemoryState
) -> None:
    # The index is written before the task: a crash in between leaves an entry whose
    # task does not exist, and readers must skip it.
    state.down = False
    original = state.save_with_event

    async def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("crashed before the commit")

    state.save_with_event = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await service.create(TaskCreate(title="never committed"))
    state.save_with_event = original  # type: ignore[method-assign]
    kept = await service.create(TaskCreate(title="kept"))
    page = await service.list(status=None, limit=10, cursor=None)
    assert [t.id for t in page.items] == [kept.task.id]


async def test_a_tampered_cursor_is_refused(service: TaskService) -> None:
    with pytest.raises(InvalidCursor):
        await service.list(status=None, limit=10, cursor="not-a-cursor")


async def test_idempotency_key_replays_the_first_create(
    service: TaskService, state: MemoryState
) -> None:
    request = TaskCreate(title="Once")
    first = await service.create(request, idempotency_key="abc")
    second = await service.create(request, idempotency_key="abc")
    assert second == first
    assert len(state.published) == 1
    assert len((await service.list(status=None, limit=10, cursor=None)).items) == 1


async def test_a_retried_create_whose_task_was_deleted_recreates_nothing(
    service: TaskService, state: MemoryState
) -> None:
    request = TaskCreate(title="Created, deleted, retried")
    record = await service.create(request, idempotency_key="abc")
    await service.delete(record.task.id, if_match=None)
    published = len(state.published)
    with pytest.raises(TaskGone):
        await service.create(request, idempotency_key="abc")
    with pytest.raises(TaskNotFound):
        await service.get(record.task.id)
    assert len(state.published) == published
    assert (await service.list(status=None, limit=10, cursor=None)).items == []


async def test_idempotency_key_with_another_body_is_refused(service: TaskService) -> None:
    await service.create(TaskCreate(title="Once"), idempotency_key="abc")
    with pytest.raises(IdempotencyKeyReused):
        await service.create(TaskCreate(title="Twice"), idempotency_key="abc")


async def test_idempotent_create_resumes_after_a_crash_before_its_commit(
    service: TaskService, state: MemoryState
) -> None:
    original = state.save_with_event

    async def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("crashed before the commit")

    state.save_with_event = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await service.create(TaskCreate(title="Resumed"), idempotency_key="k")
    state.save_with_event = original  # type: ignore[method-assign]
    record = await service.create(TaskCreate(title="Resumed"), idempotency_key="k")
    assert (await service.get(record.task.id)).task.title == "Resumed"
    assert len(state.published) == 1
    # The crashed attempt left an index entry too; the task is still listed once.
    page = await service.list(status=None, limit=10, cursor=None)
    assert [t.id for t in page.items] == [record.task.id]


async def test_a_held_lease_makes_writers_wait_then_give_up(
    service: TaskService, state: MemoryState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("task_api.lease.LEASE_WAIT_SECONDS", 0.05)
    created = await service.create(TaskCreate(title="T"))
    async with task_lease(state, created.task.id):
        with pytest.raises(TaskBusy):
            await service.update(created.task.id, TaskUpdate(title="U"), None)


async def test_a_writer_whose_lease_expired_does_not_release_the_next_holders(
    state: MemoryState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The slow holder's release used to delete whatever lease was there: the next
    holder's, letting a third writer in beside it."""
    monkeypatch.setattr("task_api.lease.LEASE_WAIT_SECONDS", 0.05)
    task_id = uuid4()
    next_holder = task_lease(state, task_id)
    async with task_lease(state, task_id):
        state.advance(LEASE_TTL_SECONDS + 1)  # stalled past its TTL: the lease is gone
        assert await state.get(lease_key(task_id)) is None
        await next_holder.__aenter__()
    # The slow one has released; the next one still holds the task: a third waits.
    with pytest.raises(TaskBusy):
        async with task_lease(state, task_id):
            pass
    await next_holder.__aexit__(None, None, None)
    assert await state.get(lease_key(task_id)) is None


def test_every_write_acknowledged_is_relayed_before_the_relay_gives_up() -> None:
    """Dapr's outbox relay waits about 11 s (1 s, then up to 10 s of retries) for a
    transaction's commit marker, then drops the event (outboxDiscardWhenMissingState,
    so that failed transactions are not retried forever). task-api acknowledges a write
    only if its transaction answered within the sidecar call deadline, so that deadline
    must stay below the relay's wait: a commit slower than that was answered 503."""
    relay_wait_seconds = 1 + 10
    assert Settings().dapr_call_timeout_seconds < relay_wait_seconds


def test_the_lease_outlives_the_longest_holder() -> None:
    """A holder reads the task and writes it, each bounded by the sidecar call deadline."""
    assert 2 * (2 * Settings().dapr_call_timeout_seconds) <= LEASE_TTL_SECONDS


async def test_racing_writers_on_one_revision_exactly_one_wins(
    service: TaskService, state: MemoryState
) -> None:
    created = await service.create(TaskCreate(title="T"))

    async def rename(i: int) -> str:
        try:
            await service.update(
                created.task.id, TaskUpdate(title=f"by {i}"), frozenset({created.revision})
            )
        except (PreconditionFailed, TaskBusy) as error:
            return type(error).__name__
        return "won"

    outcomes = await asyncio.gather(*(rename(i) for i in range(16)))
    assert outcomes.count("won") == 1
    assert len(state.published) == 2


async def test_a_delete_that_committed_succeeds_even_if_the_index_cleanup_fails(
    service: TaskService, state: MemoryState, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await service.create(TaskCreate(title="T"))

    async def unavailable(self: object, task_id: object, seq: object) -> None:
        raise InfrastructureUnavailable("index shard unreachable")

    monkeypatch.setattr("task_api.task_index.TaskIndex.remove", unavailable)
    await service.delete(created.task.id, None)
    with pytest.raises(TaskNotFound):
        await service.get(created.task.id)
    assert (await service.list(status=None, limit=10, cursor=None)).items == []


async def test_a_lease_that_cannot_be_released_does_not_hide_the_outcome(
    service: TaskService, state: MemoryState, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await service.create(TaskCreate(title="T"))
    await service.update(created.task.id, TaskUpdate(title="U"), frozenset({created.revision}))

    async def unavailable(key: str, *, etag: str | None = None) -> None:
        raise InfrastructureUnavailable("gone")

    monkeypatch.setattr(state, "delete", unavailable)
    with pytest.raises(PreconditionFailed):
        await service.update(created.task.id, TaskUpdate(title="V"), frozenset({created.revision}))


async def test_concurrent_retries_of_one_keyed_create_commit_it_once(
    service: TaskService, state: MemoryState
) -> None:
    """Both retries used to read the task as absent and commit it, each publishing its
    task.created; a delete between the two commits would have been undone."""
    request = TaskCreate(title="Sent twice at once")
    records = await asyncio.gather(
        *(service.create(request, idempotency_key="same") for _ in range(4))
    )
    assert len({record.revision for record in records}) == 1
    assert len(state.published) == 1


async def test_a_retry_that_read_the_task_absent_cannot_undo_a_delete(
    service: TaskService, state: MemoryState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One request reads the task as absent and stalls; meanwhile another request with
    the same key creates the task and it is deleted; then the stalled one commits. The
    delete must stand (it used to be undone: the task was back)."""
    monkeypatch.setattr("task_api.lease.LEASE_WAIT_SECONDS", 0.2)
    request = TaskCreate(title="Created, deleted, resurrected?")
    stalled_after_read = asyncio.Event()
    go_on = asyncio.Event()
    original_get_many = state.get_many

    async def get_many(keys: Sequence[str]) -> Mapping[str, Versioned]:
        found = await original_get_many(keys)
        if any(k.startswith("task:") for k in keys) and asyncio.current_task() is stalled:
            stalled_after_read.set()
            await go_on.wait()
        return found

    monkeypatch.setattr(state, "get_many", get_many)
    stalled = asyncio.create_task(service.create(request, idempotency_key="k"))
    await stalled_after_read.wait()
    try:
        other = await service.create(request, idempotency_key="k")
        await service.delete(other.task.id, None)
        deleted = True
    except TaskBusy:  # the stalled request holds the task: nothing else can happen
        deleted = False
    go_on.set()
    record = await stalled
    if deleted:
        with pytest.raises(TaskNotFound):
            await service.get(record.task.id)
    else:
        assert await service.get(record.task.id) == record
