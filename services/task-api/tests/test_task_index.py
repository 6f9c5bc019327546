"""The list index on in-memory state: paged shards, cursors, removal, stray entries."""

import asyncio
import json
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID, uuid4

import pytest
from task_api_fakes import MemoryState

from dapr_service_kit.testing import Clock
from task_api.errors import InvalidCursor
from task_api.ports import EtagMismatch, Versioned
from task_api.tasks import TaskService
from task_contracts import TaskCreate


@pytest.fixture(autouse=True)
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pages of two entries: a few dozen tasks already span many pages per shard.
    monkeypatch.setattr("task_api.task_index.PAGE_SIZE", 2)


async def list_all(service: TaskService, limit: int) -> list[UUID]:
    seen: list[UUID] = []
    cursor = None
    while True:
        page = await service.list(status=None, limit=limit, cursor=cursor)
        seen += [task.id for task in page.items]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


def index_pages(state: MemoryState) -> dict[str, dict[str, Any]]:
    return {
        key: json.loads(item.data)
        for key, item in state.items.items()
        if key.startswith("tasks-index:") and not key.endswith(":head")
    }


@pytest.mark.parametrize("limit", [1, 3, 100])
async def test_pages_through_many_index_pages_newest_first(state: MemoryState, limit: int) -> None:
    service = TaskService(state, clock=Clock())
    created = [(await service.create(TaskCreate(title=f"t{i}"))).task.id for i in range(40)]
    assert len(index_pages(state)) > 16  # the shards rolled over to further pages
    assert await list_all(service, limit) == list(reversed(created))


async def test_concurrent_creates_on_two_replicas_are_each_listed_once(
    state: MemoryState,
) -> None:
    # Two TaskServices stand for two task-api replicas: each has its own idea of the
    # open page of a shard, which goes stale when the other one fills it.
    replicas = [TaskService(state), TaskService(state)]
    created = await asyncio.gather(
        *(replicas[i % 2].create(TaskCreate(title=f"t{i}")) for i in range(60))
    )
    listed = await list_all(replicas[0], 7)
    assert Counter(listed) == Counter(record.task.id for record in created)
    seqs = [(record.task.id.int % 16, record.index_seq) for record in created]
    assert len(set(seqs)) == len(seqs)


async def test_an_index_page_stays_small_however_many_tasks_exist(state: MemoryState) -> None:
    service = TaskService(state, clock=Clock())
    for i in range(100):
        await service.create(TaskCreate(title=f"t{i}"))
    assert max(len(page["e"]) for page in index_pages(state).values()) <= 2


async def test_a_delete_removes_the_entry_from_its_page(state: MemoryState) -> None:
    service = TaskService(state, clock=Clock())
    kept = [(await service.create(TaskCreate(title=f"t{i}"))).task.id for i in range(10)]
    gone = kept.pop(4)
    await service.delete(gone, None)
    assert str(gone) not in json.dumps(index_pages(state))
    assert await list_all(service, 3) == list(reversed(kept))


async def test_tasks_created_while_paging_do_not_repeat_or_skip_older_ones(
    state: MemoryState,
) -> None:
    service = TaskService(state, clock=Clock())
    older = [(await service.create(TaskCreate(title=f"t{i}"))).task.id for i in range(9)]
    first = await service.list(status=None, limit=4, cursor=None)
    for i in range(5):
        await service.create(TaskCreate(title=f"new {i}"))
    rest = await list_all_from(service, first.next_cursor)
    assert [t.id for t in first.items] + rest == list(reversed(older))


async def list_all_from(service: TaskService, cursor: str | None) -> list[UUID]:
    seen: list[UUID] = []
    while cursor is not None:
        page = await service.list(status=None, limit=2, cursor=cursor)
        seen += [task.id for task in page.items]
        cursor = page.next_cursor
    return seen


@pytest.mark.parametrize("cursor", ["MS4y", "LTEuMS4yLjMuNC41LjYuNy44LjkuMTAuMTEuMTIuMTMuMTQuMTU"])
async def test_a_cursor_of_the_wrong_shape_is_refused(state: MemoryState, cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        await TaskService(state).list(status=None, limit=10, cursor=cursor)


async def test_creates_of_one_replica_do_not_collide_on_an_index_page() -> None:
    # Every read yields once more: racing writers interleave between read and write.
    state = MemoryState(read_yields=2)
    service = TaskService(state)
    created = await asyncio.gather(*(service.create(TaskCreate(title=f"t{i}")) for i in range(40)))
    assert sum(state.refused.values()) == 0
    assert Counter(await list_all(service, 10)) == Counter(r.task.id for r in created)


class CountingState(MemoryState):
    """Counts reads per key prefix; `opaque_etags` hands out ETags that are not a
    version counter, like stores other than state.redis."""

    def __init__(self, *, opaque_etags: bool = False) -> None:
        super().__init__()
        self.page_reads = 0
        self.opaque = opaque_etags
        self.etags_count_writes = not opaque_etags

    async def get(self, key: str) -> Versioned | None:
        self.page_reads += key.startswith("tasks-index:") and not key.endswith(":head")
        return await super().get(key)

    def _write(self, key: str, data: bytes, etag: str | None, first_write: bool) -> None:
        if not self.opaque:
            super()._write(key, data, etag, first_write)
            return
        current = self.items.get(key)
        if (etag is not None and (current is None or current.etag != etag)) or (
            etag is None and first_write and current is not None
        ):
            raise EtagMismatch(key)
        self.items[key] = Versioned(data, uuid4().hex)


async def test_a_replica_adds_to_its_open_page_without_reading_it() -> None:
    state = CountingState()
    service = TaskService(state)
    created = [(await service.create(TaskCreate(title=f"t{i}"))).task.id for i in range(40)]
    # Only a page just opened is read (it does not exist yet), never one it wrote.
    assert state.page_reads == len(index_pages(state))
    assert Counter(await list_all(service, 10)) == Counter(created)


async def test_with_etags_that_are_not_counters_each_add_reads_its_page() -> None:
    state = CountingState(opaque_etags=True)
    service = TaskService(state)
    created = [(await service.create(TaskCreate(title=f"t{i}"))).task.id for i in range(40)]
    assert state.page_reads >= 40  # at least one read per add
    assert Counter(await list_all(service, 10)) == Counter(created)


async def test_a_delete_on_the_open_page_does_not_make_the_next_add_read_it() -> None:
    state = CountingState()
    service = TaskService(state)
    for i in range(30):
        created = await service.create(TaskCreate(title=f"t{i}"))
        await service.delete(created.task.id, None)
    pages = index_pages(state)
    # A page is read when it opens; an emptied one (not the lowest) twice more, by the
    # writes that merge it into the run below: its own link past the run, and the run's
    # bottom page naming it as the run's top.
    emptied = [key for key, page in pages.items() if page["n"] == 2 and not key.endswith(":0")]
    assert state.page_reads == len(pages) + 2 * len(emptied)
    assert await list_all(service, 10) == []


async def test_a_replica_removes_entries_another_replica_added(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Pages large enough that both replicas add to the same open pages: each one's
    # idea of a page's version goes stale with the other's adds.
    monkeypatch.setattr("task_api.task_index.PAGE_SIZE", 32)
    state = MemoryState(read_yields=2)
    replicas = [TaskService(state), TaskService(state)]
    created = await asyncio.gather(
        *(replicas[i % 2].create(TaskCreate(title=f"t{i}")) for i in range(64))
    )
    # Each task is deleted through the replica that did not create it.
    await asyncio.gather(
        *(replicas[(i + 1) % 2].delete(record.task.id, None) for i, record in enumerate(created))
    )
    left = [e[0] for page in index_pages(state).values() for e in page["e"].values()]
    assert left == []
    assert await list_all(replicas[0], 10) == []


class PageReadCounting(MemoryState):
    """Counts the index pages that lists read."""

    page_reads: int = 0

    async def get_many(self, keys: Sequence[str]) -> Mapping[str, Versioned]:
        self.page_reads += sum(k.startswith("tasks-index:") and "head" not in k for k in keys)
        return await super().get_many(keys)


@pytest.mark.parametrize("order", ["oldest first", "newest first", "shuffled"])
async def test_lists_pass_emptied_pages_in_one_read(order: str) -> None:
    """Pages emptied by deletes used to be read one by one: with most tasks deleted,
    listing the rest read every page of every shard."""
    state = PageReadCounting()
    service = TaskService(state, clock=Clock())
    created = [(await service.create(TaskCreate(title=f"t{i}"))).task.id for i in range(400)]
    doomed = created[:380]
    if order == "newest first":
        doomed.reverse()
    elif order == "shuffled":
        random.Random(7).shuffle(doomed)  # noqa: S311 (a fixed order, not a secret)
    for task_id in doomed:
        await service.delete(task_id, None)
    state.page_reads = 0
    assert await list_all(service, 100) == list(reversed(created[380:]))
    # Per shard: its live pages, then one emptied page that links past the rest
    # (about 13 pages per shard are there), whatever order they emptied in.
    assert state.page_reads <= 16 * 4
