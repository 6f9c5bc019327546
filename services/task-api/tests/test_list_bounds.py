"""Each list request does bounded work (issue 17): cursors are signed and clamped to the
shard heads, and a request stops after a capped number of index reads or entries,
answering with a cursor to continue from."""

import base64
from collections import Counter
from collections.abc import Mapping, Sequence
from uuid import UUID

import pytest
from task_api_fakes import MemoryState

from dapr_service_kit.testing import Clock
from task_api.cursor import CursorCodec
from task_api.errors import InvalidCursor
from task_api.ports import InfrastructureUnavailable, Versioned
from task_api.task_index import MAX_LINK_HOPS, MAX_REPAIRED_PAGES, SHARD_COUNT
from task_api.tasks import MAX_EXAMINED, MAX_INDEX_READS, TaskService
from task_contracts import TaskCreate, TaskStatus

KEY = b"cursor key of the test"
# The cursor of the issue: sixteen positions 3.2 million entries down, unsigned.
FORGED = base64.urlsafe_b64encode(".".join(["3200000"] * 16).encode()).decode().rstrip("=")


class CountingState(MemoryState):
    """Counts bulk reads of index pages and task keys read, per list request."""

    def __init__(self) -> None:
        super().__init__()
        self.index_reads = 0
        self.tasks_read = 0

    def reset(self) -> None:
        self.index_reads = self.tasks_read = 0

    async def get_many(self, keys: Sequence[str]) -> Mapping[str, Versioned]:
        pages = [k for k in keys if k.startswith("tasks-index:") and not k.endswith(":head")]
        self.index_reads += bool(pages)
        self.tasks_read += sum(k.startswith("task:") for k in keys)
        return await super().get_many(keys)


@pytest.fixture
def state() -> CountingState:
    return CountingState()


@pytest.fixture
def service(state: CountingState) -> TaskService:
    return TaskService(state, clock=Clock(), cursor_key=KEY)


async def walk(
    service: TaskService,
    state: CountingState,
    *,
    status: TaskStatus | None = None,
    limit: int = 100,
    cursor: str | None = None,
    max_index_reads: int = MAX_INDEX_READS,
) -> tuple[list[UUID], int]:
    """Every task from `cursor` on, and how many requests that took; each request is
    checked against the caps."""
    seen: list[UUID] = []
    requests = 0
    while True:
        state.reset()
        page = await service.list(status=status, limit=limit, cursor=cursor)
        requests += 1
        assert state.index_reads <= max_index_reads
        assert state.tasks_read <= MAX_EXAMINED
        seen += [task.id for task in page.items]
        if page.next_cursor is None:
            return seen, requests
        cursor = page.next_cursor
        assert requests < 1000, "the walk does not end"


async def test_the_forged_cursor_of_the_issue_is_refused(service: TaskService) -> None:
    await service.create(TaskCreate(title="t"))
    with pytest.raises(InvalidCursor):
        await service.list(status=None, limit=1, cursor=FORGED)


async def test_an_edited_cursor_is_refused(service: TaskService) -> None:
    for i in range(3):
        await service.create(TaskCreate(title=f"t{i}"))
    cursor = (await service.list(status=None, limit=1, cursor=None)).next_cursor
    assert cursor is not None
    signed = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    edited = signed.replace(b".", b"9.", 1)  # one position moved, the signature kept
    forged = base64.urlsafe_b64encode(edited).decode().rstrip("=")
    with pytest.raises(InvalidCursor):
        await service.list(status=None, limit=1, cursor=forged)


async def test_a_cursor_signed_with_another_key_is_refused(service: TaskService) -> None:
    other = CursorCodec(b"another deployment's key").encode([0] * SHARD_COUNT)
    with pytest.raises(InvalidCursor):
        await service.list(status=None, limit=1, cursor=other)


async def test_a_position_past_a_shard_head_starts_at_the_head(
    service: TaskService, state: CountingState
) -> None:
    created = [(await service.create(TaskCreate(title=f"t{i}"))).task.id for i in range(20)]
    # Signed with the right key, as a leaked key or a bug would allow.
    far = CursorCodec(KEY).encode([3_200_000] * SHARD_COUNT)
    state.reset()
    page = await service.list(status=None, limit=5, cursor=far)
    assert [task.id for task in page.items] == list(reversed(created))[:5]
    assert state.index_reads == 1


async def test_a_filter_that_matches_nothing_examines_a_bounded_number_of_tasks(
    service: TaskService, state: CountingState
) -> None:
    tasks = [(await service.create(TaskCreate(title=f"t{i}"))).task.id for i in range(600)]
    completed = tasks[::150]  # spread over the whole index
    for task_id in completed:
        await service.change_status(task_id, TaskStatus.COMPLETED, None)

    state.reset()
    first = await service.list(status=TaskStatus.IN_PROGRESS, limit=1, cursor=None)
    assert first.items == []
    assert first.next_cursor is not None  # not the end: continue from there
    assert state.tasks_read <= MAX_EXAMINED

    nothing, requests = await walk(service, state, status=TaskStatus.IN_PROGRESS, limit=1)
    assert nothing == []
    assert requests >= 600 // MAX_EXAMINED
    found, _ = await walk(service, state, status=TaskStatus.COMPLETED, limit=1)
    assert found == list(reversed(completed))


async def test_a_long_run_of_entries_of_deleted_tasks_costs_bounded_requests(
    monkeypatch: pytest.MonkeyPatch, state: CountingState
) -> None:
    # Pages of two entries, and deletes whose index cleanup failed: many pages of
    # entries whose tasks are gone to walk past (emptied pages would be skipped).
    monkeypatch.setattr("task_api.task_index.PAGE_SIZE", 2)
    service = TaskService(state, clock=Clock(), cursor_key=KEY)
    kept = [(await service.create(TaskCreate(title=f"kept {i}"))).task.id for i in range(3)]

    async def unavailable(self: object, task_id: object, seq: object) -> None:
        raise InfrastructureUnavailable("index shard unreachable")

    monkeypatch.setattr("task_api.task_index.TaskIndex.remove", unavailable)
    for i in range(400):
        await service.delete((await service.create(TaskCreate(title=f"gone {i}"))).task.id, None)

    # A request also removes the stale entries it met, on a bounded number of pages,
    # each merged with its neighbours in a bounded number of reads.
    repair_reads = MAX_REPAIRED_PAGES * MAX_LINK_HOPS
    listed, requests = await walk(
        service, state, limit=10, max_index_reads=MAX_INDEX_READS + repair_reads
    )
    assert listed == list(reversed(kept))
    assert requests > 1  # the stale entries were walked past over several requests


async def test_paging_with_a_filter_and_small_caps_lists_each_match_once(
    monkeypatch: pytest.MonkeyPatch, state: CountingState
) -> None:
    # Caps so small that nearly every request stops early, in every possible place.
    monkeypatch.setattr("task_api.task_index.PAGE_SIZE", 2)
    monkeypatch.setattr("task_api.tasks.MAX_INDEX_READS", 1)
    monkeypatch.setattr("task_api.tasks.MAX_EXAMINED", 3)
    service = TaskService(state, clock=Clock(), cursor_key=KEY)
    tasks = [(await service.create(TaskCreate(title=f"t{i}"))).task.id for i in range(120)]
    for task_id in tasks[::7]:
        await service.change_status(task_id, TaskStatus.COMPLETED, None)
    for task_id in tasks[3::5]:
        await service.delete(task_id, None)
    expected = [t for t in reversed(tasks[::7]) if t not in tasks[3::5]]

    for limit in (1, 2, 100):
        found, _ = await walk(service, state, status=TaskStatus.COMPLETED, limit=limit)
        assert found == expected
    everything, _ = await walk(service, state, limit=4)
    assert Counter(everything) == Counter(t for t in tasks if t not in tasks[3::5])
