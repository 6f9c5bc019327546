"""The list index stays cheap to walk after deletes (issue 26, item 5): emptied pages
are linked past whatever the delete order, so a first page holds tasks whenever tasks
exist, and entries whose task is gone are removed when a list meets them."""

import asyncio
import json
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from task_api_fakes import MemoryState

from dapr_service_kit.testing import Clock
from task_api import task_index
from task_api.ports import InfrastructureUnavailable, Versioned
from task_api.tasks import ABANDONED_ENTRY_AFTER, CREATE_COMMIT_WINDOW, TaskService
from task_contracts import TaskCreate

# Enough tasks for a dozen pages per shard (pages of two entries): the old index needed
# a read per emptied page, and a request gives up after eight.
TASKS = 400
KEPT = 3


@pytest.fixture(autouse=True)
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("task_api.task_index.PAGE_SIZE", 2)


def _is_emptied(page: Versioned) -> bool:
    raw = json.loads(page.data)
    return bool(raw["n"] >= task_index.PAGE_SIZE and not raw["e"])


class ReadCounting(MemoryState):
    """Counts, per list request, the bulk reads of index pages and the emptied pages
    among what they return. With `interleave`, every read also yields once more before
    it returns, so that racing writers interleave between their read and their write."""

    def __init__(self, *, interleave: bool = False) -> None:
        super().__init__(read_yields=2 if interleave else 1)
        self.index_reads = 0
        self.emptied_read = 0
        self.emptied_read_per_shard: Counter[int] = Counter()

    def reset(self) -> None:
        self.index_reads = self.emptied_read = 0
        self.emptied_read_per_shard.clear()

    async def get_many(self, keys: Sequence[str]) -> Mapping[str, Versioned]:
        found = await super().get_many(keys)
        pages = [k for k in keys if k.startswith("tasks-index:") and not k.endswith(":head")]
        self.index_reads += bool(pages)
        emptied = [k for k in pages if k in found and _is_emptied(found[k])]
        self.emptied_read += len(emptied)
        self.emptied_read_per_shard.update(int(k.split(":")[1]) for k in emptied)
        return found


def index_entries(state: MemoryState) -> list[str]:
    """The task ids of every entry left in the index."""
    return [
        entry[0]
        for key, item in state.items.items()
        if key.startswith("tasks-index:") and not key.endswith(":head")
        for entry in json.loads(item.data)["e"].values()
    ]


def kept_and_doomed(created: list[UUID], order: str) -> tuple[list[UUID], list[UUID]]:
    """Which tasks stay, and the others in the order they are deleted."""
    if order == "newest first":
        return created[:KEPT], list(reversed(created[KEPT:]))
    if order == "oldest first":
        return created[-KEPT:], created[:-KEPT]
    shuffled = list(created)
    random.Random(26).shuffle(shuffled)  # noqa: S311 (a fixed order, not a secret)
    kept = set(shuffled[:KEPT])
    return [t for t in created if t in kept], shuffled[KEPT:]


async def first_page_of_a_fresh_list(service: TaskService, state: ReadCounting) -> list[UUID]:
    state.reset()
    page = await service.list(status=None, limit=20, cursor=None)
    assert page.next_cursor is None
    return [task.id for task in page.items]


def assert_bounded(state: ReadCounting) -> None:
    # Per shard, at most one emptied page above each live page and one below the last;
    # the kept tasks are on at most KEPT pages.
    assert state.emptied_read <= task_index.SHARD_COUNT + KEPT
    # The heads, the runs below them, the live pages; after each task taken, the run
    # below its page and the page below that.
    assert state.index_reads <= 3 + 2 * KEPT


@pytest.mark.parametrize("order", ["newest first", "oldest first", "random"])
async def test_the_first_page_holds_tasks_whatever_the_delete_order(order: str) -> None:
    """Deleting newest first used to link no emptied page at all: a fresh list read
    eight of them per shard and answered no items, with a cursor."""
    state = ReadCounting()
    service = TaskService(state, clock=Clock())
    created = [(await service.create(TaskCreate(title=f"t{i}"))).task.id for i in range(TASKS)]
    kept, doomed = kept_and_doomed(created, order)
    for task_id in doomed:
        await service.delete(task_id, None)

    assert await first_page_of_a_fresh_list(service, state) == list(reversed(kept))
    assert_bounded(state)


async def test_a_walk_meets_no_empty_request_after_deletes_newest_first() -> None:
    """Live tasks spread over the index, all the others deleted newest first: every
    request of a walk holds tasks, and the emptied pages read do not grow with the
    number of tasks deleted."""
    state = ReadCounting()
    service = TaskService(state, clock=Clock())
    created = [(await service.create(TaskCreate(title=f"t{i}"))).task.id for i in range(TASKS)]
    kept = created[::50]
    for task_id in reversed(created):
        if task_id not in kept:
            await service.delete(task_id, None)

    seen: list[UUID] = []
    cursor = None
    emptied_read = 0
    for _ in range(len(kept)):
        state.reset()
        page = await service.list(status=None, limit=2, cursor=cursor)
        assert page.items, "a request of the walk came back empty"
        seen += [task.id for task in page.items]
        emptied_read += state.emptied_read
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(kept))
    assert emptied_read <= task_index.SHARD_COUNT + len(kept)


async def test_replicas_deleting_at_once_leave_the_first_page_cheap() -> None:
    """Two replicas empty neighbouring pages of one shard at the same time, each
    reading between its own writes: each merge must see the other's, or the run they
    leave is linked only page by page."""
    state = ReadCounting(interleave=True)
    replicas = [TaskService(state, clock=Clock()), TaskService(state, clock=Clock())]
    created = [(await replicas[0].create(TaskCreate(title=f"t{i}"))).task.id for i in range(TASKS)]
    in_shard = [t for t in created if task_index.shard_of(t) == 0]
    for task_id in created:
        if task_id not in in_shard:
            await replicas[0].delete(task_id, None)
    # Every task of shard 0 but its oldest, newest first: a dozen pages, one run.
    doomed = list(reversed(in_shard[1:]))

    async def delete(i: int, task_id: UUID) -> None:
        await replicas[i % 2].delete(task_id, None)

    # Four at a time (two pages), alternating replicas: neighbouring pages empty at once.
    for start in range(0, len(doomed), 4):
        await asyncio.gather(*(delete(i, t) for i, t in enumerate(doomed[start : start + 4])))

    assert await first_page_of_a_fresh_list(replicas[1], state) == in_shard[:1]
    # Below the head, the run's top, then the page of the task kept.
    assert state.emptied_read_per_shard[0] <= 1


async def test_a_cursor_into_pages_emptied_since_continues_past_them_at_once() -> None:
    """A client pages while another deletes newest first: its cursor now points into
    the middle of a run, below its top. The pages there link only to the next one
    down (each was emptied before the one below it); the run's top knows its end."""
    state = ReadCounting()
    service = TaskService(state, clock=Clock())
    created = [(await service.create(TaskCreate(title=f"t{i}"))).task.id for i in range(800)]
    cursor = None
    for _ in range(2):
        cursor = (await service.list(status=None, limit=100, cursor=cursor)).next_cursor
    kept, doomed = kept_and_doomed(created, "newest first")
    for task_id in doomed:
        await service.delete(task_id, None)

    state.reset()
    page = await service.list(status=None, limit=20, cursor=cursor)
    assert [task.id for task in page.items] == list(reversed(kept))
    assert page.next_cursor is None
    # Per shard: where the cursor points, the run's top, and one run below a kept task.
    assert state.emptied_read <= 2 * task_index.SHARD_COUNT + KEPT


# --- entries whose task is gone ------------------------------------------------------


async def test_entries_left_by_failed_removals_are_removed_when_lists_meet_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = ReadCounting()
    service = TaskService(state, clock=Clock())
    kept = [(await service.create(TaskCreate(title=f"kept {i}"))).task.id for i in range(KEPT)]

    async def unavailable(self: object, task_id: object, seq: object) -> None:
        raise InfrastructureUnavailable("index shard unreachable")

    with monkeypatch.context() as broken:
        broken.setattr("task_api.task_index.TaskIndex.remove", unavailable)
        for i in range(200):
            record = await service.create(TaskCreate(title=f"gone {i}"))
            await service.delete(record.task.id, None)
    assert len(index_entries(state)) == KEPT + 200

    # Each list removes what it meets; a few walks leave only the live tasks.
    for _ in range(10):
        cursor: str | None = None
        while True:
            page = await service.list(status=None, limit=10, cursor=cursor)
            cursor = page.next_cursor
            if cursor is None:
                break
        if len(index_entries(state)) == KEPT:
            break
    assert sorted(index_entries(state)) == sorted(str(t) for t in kept)
    assert await first_page_of_a_fresh_list(service, state) == list(reversed(kept))
    assert_bounded(state)


async def test_the_stray_entry_of_a_replayed_create_is_removed(
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
    assert index_entries(state) == [str(record.task.id)] * 2

    page = await service.list(status=None, limit=10, cursor=None)
    assert [t.id for t in page.items] == [record.task.id]
    assert index_entries(state) == [str(record.task.id)]


class SettableClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_the_entry_of_a_create_that_died_is_removed_once_it_is_old(
    state: MemoryState,
) -> None:
    clock = SettableClock()
    service = TaskService(state, clock=clock)

    async def died(*args: object, **kwargs: object) -> None:
        raise InfrastructureUnavailable("the sidecar went away before the commit")

    original = state.save_with_event
    state.save_with_event = died  # type: ignore[method-assign]
    with pytest.raises(InfrastructureUnavailable):
        await service.create(TaskCreate(title="never committed"))
    state.save_with_event = original  # type: ignore[method-assign]
    [orphan] = index_entries(state)

    # Young, it may belong to a create still on its way to its commit: it stays.
    clock.now += CREATE_COMMIT_WINDOW
    assert (await service.list(status=None, limit=10, cursor=None)).items == []
    assert index_entries(state) == [orphan]

    clock.now += ABANDONED_ENTRY_AFTER
    assert (await service.list(status=None, limit=10, cursor=None)).items == []
    assert index_entries(state) == []


async def test_a_list_leaves_the_entry_of_a_create_still_committing(
    state: MemoryState,
) -> None:
    """A list meets the entry of a create that has added it but not yet committed its
    task (the record is missing): removing it would leave a 201 unlisted."""
    clock = SettableClock()
    service = TaskService(state, clock=clock)
    added = asyncio.Event()
    commit = asyncio.Event()
    original = state.save_with_event

    async def slow_commit(key: str, data: bytes, **kwargs: Any) -> None:
        added.set()
        await commit.wait()
        await original(key, data, **kwargs)

    state.save_with_event = slow_commit  # type: ignore[method-assign]
    creating = asyncio.create_task(service.create(TaskCreate(title="on its way")))
    await added.wait()
    clock.now += CREATE_COMMIT_WINDOW / 2  # a slow commit, still within its window
    assert (await service.list(status=None, limit=10, cursor=None)).items == []
    commit.set()
    record = await creating

    page = await service.list(status=None, limit=10, cursor=None)
    assert [t.id for t in page.items] == [record.task.id]


async def test_a_create_that_outlives_its_commit_window_does_not_commit(
    state: MemoryState,
) -> None:
    """Lists remove entries whose task is still missing long after they were added; a
    create whose commit would come after that must not answer 201."""
    clock = SettableClock()
    service = TaskService(state, clock=clock)
    original_add = task_index.TaskIndex.add

    async def stalled_add(index: task_index.TaskIndex, task_id: UUID, at: datetime) -> int:
        seq = await original_add(index, task_id, at)
        clock.now += CREATE_COMMIT_WINDOW + timedelta(seconds=1)
        return seq

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(task_index.TaskIndex, "add", stalled_add)
        with pytest.raises(InfrastructureUnavailable):
            await service.create(TaskCreate(title="too late"))
    assert [key for key in state.items if key.startswith("task:")] == []
    assert state.published == []
