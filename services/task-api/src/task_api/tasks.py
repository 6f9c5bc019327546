"""The task domain: what each REST operation does to the store and which event it
publishes. Routes call this; this calls the ports."""

import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from pydantic import BaseModel

from dapr_service_kit.optimistic import TooMuchContention
from task_api.cursor import CursorCodec
from task_api.errors import IdempotencyKeyReused, PreconditionFailed, TaskGone, TaskNotFound
from task_api.lease import HeldLease, WallClock, task_lease
from task_api.models import Task, TaskPage
from task_api.ports import EtagMismatch, InfrastructureUnavailable, StateStore, Versioned
from task_api.records import TaskRecord, created_record, event_for, new_revision, task_key
from task_api.task_index import IndexScan, Listed, TaskIndex
from task_contracts import EventType, TaskCreate, TaskStatus, TaskUpdate

logger = logging.getLogger(__name__)

TOMBSTONE_TTL_SECONDS = 7 * 24 * 3600
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
# The most tasks fetched per bulk read while filling a page.
LIST_BATCH = 100
# Per list request, at most this many bulk reads of the index (each of at most one page
# per shard) and this many entries looked at: a filter that matches nothing, or a long
# run of removed entries, costs several bounded requests instead of one unbounded one.
MAX_INDEX_READS = 8
MAX_EXAMINED = 200
# A create commits at most this long after it added its index entry (else 503; the
# commit itself is bounded by the sidecar call deadline). So an entry whose task is
# still missing after ABANDONED_ENTRY_AFTER belongs to a create that died, and a list
# removes it; the margin between the two covers the clocks of replicas disagreeing.
CREATE_COMMIT_WINDOW = timedelta(seconds=30)
ABANDONED_ENTRY_AFTER = timedelta(minutes=10)


def utc_now() -> datetime:
    return datetime.now(UTC)


class _IdempotentCreate(BaseModel):
    """What an Idempotency-Key stands for: the request it came with and the task that
    request creates. The task's creation time is when the key was claimed: the claim
    expires IDEMPOTENCY_TTL_SECONDS after it, whether or not the key's TTL was set."""

    request: TaskCreate
    task: Task

    def expired(self, now: datetime) -> bool:
        return now - self.task.created_at >= timedelta(seconds=IDEMPOTENCY_TTL_SECONDS)


@dataclass(frozen=True, slots=True)
class _Loaded:
    record: TaskRecord
    etag: str


async def _take(scan: IndexScan, count: int) -> list[Listed]:
    batch: list[Listed] = []
    while len(batch) < count and (listed := await scan.take()) is not None:
        batch.append(listed)
    return batch


Change = Callable[[Task, datetime], tuple[Task, EventType] | None]
# What a write enters once it is ready for the store, its task's lease held if it
# needs one: the back-pressure's write slot in the app (task_api.write_gate).
WriteSlot = Callable[[], AbstractAsyncContextManager[None]]


def _unlimited() -> AbstractAsyncContextManager[None]:
    return contextlib.nullcontext()


class TaskService:
    def __init__(
        self,
        state: StateStore,
        clock: Callable[[], datetime] = utc_now,
        cursor_key: bytes | None = None,
        lease_clock: WallClock = time.time,
        write_slot: WriteSlot = _unlimited,
    ) -> None:
        self._state = state
        self._index = TaskIndex(state)
        self._clock = clock
        self._lease_clock = lease_clock
        self._write_slot = write_slot
        # Without a key of the deployment (tests), one of this instance: its cursors
        # then only work on this instance.
        self._cursors = CursorCodec(cursor_key or secrets.token_bytes(32))

    # --- reads ---------------------------------------------------------------------

    async def get(self, task_id: UUID) -> TaskRecord:
        return (await self._load(task_id)).record

    async def list(self, *, status: TaskStatus | None, limit: int, cursor: str | None) -> TaskPage:
        """Up to `limit` tasks, newest first. Bounded work whatever the cursor and the
        filter: a list stops after MAX_INDEX_READS reads of the index or MAX_EXAMINED
        entries, and may then return fewer items (even none) with a next_cursor.
        Entries it meets whose task is gone are removed from the index on the way."""
        scan = await self._index.scan(
            self._cursors.decode(cursor) if cursor else None, max_reads=MAX_INDEX_READS
        )
        items: list[Task] = []
        dangling: list[Listed] = []
        unused: Sequence[Listed] = []
        examined = 0
        # First as many as the page needs; more each round if entries turn out to be
        # filtered out, deleted or stray.
        batch_size = limit
        while len(items) < limit and examined < MAX_EXAMINED:
            batch = await _take(scan, min(batch_size, MAX_EXAMINED - examined))
            batch_size = min(LIST_BATCH, batch_size * 2)
            if not batch:
                break
            examined += len(batch)
            found = await self._state.get_many([task_key(c.task_id) for c in batch])
            for position, candidate in enumerate(batch):
                stored = found.get(task_key(candidate.task_id))
                record = TaskRecord.from_bytes(stored.data) if stored is not None else None
                if record is not None and record.lists_as(candidate.seq):
                    if status in (None, record.task.status):
                        items.append(record.task)
                elif self._abandoned(candidate, record):
                    dangling.append(candidate)
                if len(items) == limit:
                    unused = batch[position + 1 :]
                    break
        page = await self._page(items, scan, unused)
        await self._repair(dangling)
        return page

    def _abandoned(self, entry: Listed, record: TaskRecord | None) -> bool:
        """Whether an index entry that does not list its task will never list it: the
        task is deleted or records another entry, or it is missing long after the entry
        was added (a create still on its way to its commit has a young entry)."""
        if record is not None:
            return True
        return entry.added_before(self._clock() - ABANDONED_ENTRY_AFTER)

    async def _repair(self, dangling: Sequence[Listed]) -> None:
        if not dangling:
            return
        try:
            await self._index.repair(dangling)
        except (InfrastructureUnavailable, TooMuchContention) as error:
            # The list is answered all the same; the next one meets them again.
            logger.warning("%d stale index entries left for now (%s)", len(dangling), error)

    async def _page(
        self, items: Sequence[Task], scan: IndexScan, unused: Sequence[Listed]
    ) -> TaskPage:
        """The page, with a cursor after its last entry unless the index has no more."""
        if not unused and not await scan.has_more():
            return TaskPage(items=list(items))
        # Continue after the last entry looked at: put back what the batch read beyond it.
        below = scan.below
        for entry in unused:
            below[entry.shard] = max(below[entry.shard], entry.seq + 1)
        return TaskPage(items=list(items), next_cursor=self._cursors.encode(below))

    # --- writes --------------------------------------------------------------------

    async def create(self, request: TaskCreate, idempotency_key: str | None = None) -> TaskRecord:
        now = self._clock()
        task = Task(
            id=uuid4(),
            title=request.title,
            description=request.description,
            priority=request.priority,
            created_at=now,
            updated_at=now,
        )
        if idempotency_key is None:
            # A new id: no other request can know it, so nothing can race this write.
            async with self._write_slot():
                return await self._commit_new(task, now)
        task = await self._claim_idempotency_key(idempotency_key, request, task)
        # Requests with the same key share the id: the first to hold the task's lease
        # commits it, the others find it. Without the lease two could both find it
        # absent and commit, and the later commit would undo a delete in between
        # (state.redis applies an etag-less write in a transaction whatever is stored).
        async with self._leased(task.id) as lease:
            stored = await self._read_leased(task.id, lease)
            if stored is None:
                return await self._commit_new(task, now, lease)
        # Created by the first request; a tombstone means deleted since, and a retry
        # must not bring it back (the tombstone outlives the key).
        existing = TaskRecord.from_bytes(stored.data)
        if existing.deleted_at is not None:
            raise TaskGone(str(task.id))
        return existing

    async def _commit_new(
        self, task: Task, now: datetime, lease: HeldLease | None = None
    ) -> TaskRecord:
        # Index first: a task is never committed without being listable. The entry
        # is added at `now`, not at the task's creation: a replayed create commits now.
        record = created_record(task, await self._index.add(task.id, now))
        if self._clock() - now > CREATE_COMMIT_WINDOW:
            # Lists may take the entry for one whose create died: too late to commit.
            raise InfrastructureUnavailable(f"the create of task {task.id} took too long")
        await self._state.save_with_event(
            task_key(task.id),
            record.to_bytes(),
            etag=None,
            event=event_for(task, EventType.CREATED, now),
            delete=lease.give_back() if lease else None,
        )
        if lease:
            lease.given_back_by_commit()
        return record

    async def update(
        self, task_id: UUID, changes: TaskUpdate, if_match: frozenset[str] | None
    ) -> TaskRecord:
        fields = changes.model_dump(exclude_unset=True)

        def apply(task: Task, now: datetime) -> tuple[Task, EventType] | None:
            updated = task.model_copy(update=fields)
            if updated == task:
                return None
            return updated.model_copy(update={"updated_at": now}), EventType.UPDATED

        return await self._change(task_id, if_match, apply)

    async def change_status(
        self, task_id: UUID, status: TaskStatus, if_match: frozenset[str] | None
    ) -> TaskRecord:
        def apply(task: Task, now: datetime) -> tuple[Task, EventType] | None:
            if task.status == status:
                return None
            changed = task.model_copy(update={"status": status, "updated_at": now})
            return changed, EventType.for_status(status)

        return await self._change(task_id, if_match, apply)

    async def delete(self, task_id: UUID, if_match: frozenset[str] | None) -> None:
        async with self._leased(task_id) as lease:
            loaded = self._live(task_id, await self._read_leased(task_id, lease))
            self._check_precondition(loaded, if_match)
            now = self._clock()
            tombstone = loaded.record.model_copy(
                update={"deleted_at": now, "revision": new_revision()}
            )
            await self._state.save_with_event(
                task_key(task_id),
                tombstone.to_bytes(),
                etag=loaded.etag,
                event=event_for(loaded.record.task, EventType.DELETED, now),
                ttl_seconds=TOMBSTONE_TTL_SECONDS,
                delete=lease.give_back(),
            )
            lease.given_back_by_commit()
        # After the commit, and best effort: the delete has happened whatever this does,
        # and readers skip an entry whose task is a tombstone.
        seq = loaded.record.index_seq
        try:
            if seq is not None:
                await self._index.remove(task_id, seq)
        except (InfrastructureUnavailable, TooMuchContention) as error:
            logger.warning("task %s deleted; its index entry stays for now (%s)", task_id, error)

    # --- helpers -------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _leased(self, task_id: UUID) -> AsyncIterator[HeldLease]:
        """The task's lease, then a write slot: while a write waits for another writer
        of the same task it holds no slot, so a busy task cannot hold up writes to
        every other task."""
        async with (
            task_lease(self._state, task_id, clock=self._lease_clock) as lease,
            self._write_slot(),
        ):
            yield lease

    async def _read_leased(self, task_id: UUID, lease: HeldLease) -> Versioned | None:
        """The task as stored, read in one call with the lease: the lease's version
        lets the commit give it back (see task_api.lease)."""
        found = await self._state.get_many([task_key(task_id), lease.key])
        lease.learn(found.get(lease.key))
        return found.get(task_key(task_id))

    async def _change(
        self, task_id: UUID, if_match: frozenset[str] | None, change: Change
    ) -> TaskRecord:
        async with self._leased(task_id) as lease:
            loaded = self._live(task_id, await self._read_leased(task_id, lease))
            self._check_precondition(loaded, if_match)
            now = self._clock()
            outcome = change(loaded.record.task, now)
            if outcome is None:
                return loaded.record
            task, event_type = outcome
            record = loaded.record.model_copy(update={"task": task, "revision": new_revision()})
            await self._state.save_with_event(
                task_key(task_id),
                record.to_bytes(),
                etag=loaded.etag,
                event=event_for(task, event_type, now),
                delete=lease.give_back(),
            )
            lease.given_back_by_commit()
            return record

    @staticmethod
    def _check_precondition(loaded: _Loaded, if_match: frozenset[str] | None) -> None:
        """`if_match`: the revisions the caller accepts (None: any)."""
        if if_match is not None and loaded.record.revision not in if_match:
            raise PreconditionFailed(str(loaded.record.task.id))

    @staticmethod
    def _live(task_id: UUID, stored: Versioned | None) -> _Loaded:
        """The stored task unless it is missing or deleted (TaskNotFound)."""
        if stored is None:
            raise TaskNotFound(str(task_id))
        record = TaskRecord.from_bytes(stored.data)
        if record.deleted_at is not None:
            raise TaskNotFound(str(task_id))
        return _Loaded(record, stored.etag)

    async def _load(self, task_id: UUID) -> _Loaded:
        return self._live(task_id, await self._state.get(task_key(task_id)))

    async def _claim_idempotency_key(self, key: str, request: TaskCreate, task: Task) -> Task:
        """The task this key creates: ours if the key is new (or its claim expired),
        else the first request's."""
        state_key = "idempotency:" + hashlib.sha256(key.encode()).hexdigest()
        claim = _IdempotentCreate(request=request, task=task).model_dump_json().encode()
        try:
            await self._state.save(
                state_key, claim, etag=None, first_write=True, ttl_seconds=IDEMPOTENCY_TTL_SECONDS
            )
            return task
        except EtagMismatch:
            stored = await self._state.get(state_key)
            if stored is None:  # expired between the two calls: claim it again
                return await self._claim_idempotency_key(key, request, task)
            first = _IdempotentCreate.model_validate_json(stored.data)
            if first.expired(self._clock()):
                # Its TTL was lost (state.redis sets it in a second command): take the
                # key over at the version read, so that one racing retry gets it.
                try:
                    await self._state.save(
                        state_key, claim, etag=stored.etag, ttl_seconds=IDEMPOTENCY_TTL_SECONDS
                    )
                    return task
                except EtagMismatch:
                    return await self._claim_idempotency_key(key, request, task)
            if first.request != request:
                raise IdempotencyKeyReused(key) from None
            return first.task
