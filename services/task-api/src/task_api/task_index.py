"""Which tasks exist, newest first, without scanning the store.

Debian's Redis has no RediSearch, so Dapr's state query API is not available. Instead
each task id goes into one of a fixed number of shards (chosen by the id), and each
shard is an append-only sequence of small pages:

- `tasks-index:<shard>:head` names the shard's newest page;
- `tasks-index:<shard>:<page>` holds up to PAGE_SIZE entries, each in its own slot.

An entry's place is its sequence number in the shard (page * PAGE_SIZE + slot). A create
writes one small page, whatever the number of tasks; a list reads the heads and then
only as many pages as its result needs; a delete rewrites the one page its entry is in
(the task record keeps the sequence number). Writers only fill a page after the head
names it, so a reader that reads the head first sees every entry added before.

A sealed page (full, no longer the head) whose entries have all been removed names the
next page below that still may hold entries, so a scan passes a run of emptied pages
(old tasks deleted in bulk, say) in one read instead of one read per page. Such a page
never changes again: its slots are never reused.

An entry is added *before* its task is committed and removed *after* its task is
deleted, so the index is always a superset of the live tasks: a task whose create
returned 201 is always listed, and readers skip entries whose task is missing, deleted,
or records another sequence number (a replayed create that crashed before its commit
leaves such a stray entry).
"""

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from dapr_service_kit.state_store import etag_after_write
from task_api.conditional import TooMuchContention, update_key
from task_api.ports import InfrastructureUnavailable, StateStore, Versioned

logger = logging.getLogger(__name__)

# Both are part of the stored format: changing either moves entries to other keys.
SHARD_COUNT = 16
PAGE_SIZE = 32


@dataclass(frozen=True, slots=True)
class Listed:
    """An entry as a list meets it: what it names, and where it sits."""

    task_id: UUID
    shard: int
    seq: int


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(at: datetime) -> int:
    """Creation times are stored as integer microseconds: compact, and compared
    without parsing."""
    return (at - _EPOCH) // timedelta(microseconds=1)


def shard_of(task_id: UUID) -> int:
    return task_id.int % SHARD_COUNT


def head_key(shard: int) -> str:
    return f"tasks-index:{shard:02d}:head"


def page_key(shard: int, page: int) -> str:
    return f"tasks-index:{shard:02d}:{page}"


@dataclass
class _Page:
    # Slots handed out so far, including those of entries removed since: a slot is
    # never reused, so sequence numbers only grow.
    used: int = 0
    # slot -> [task id, creation time in microseconds]
    slots: dict[str, list[str | int]] = field(default_factory=dict)
    # On an emptied sealed page: the next page below that may hold entries (-1: none).
    below_empty: int | None = None

    @classmethod
    def decode(cls, data: bytes | None) -> "_Page":
        if not data:
            return cls()
        raw = json.loads(data)
        return cls(used=raw["n"], slots=raw["e"], below_empty=raw.get("to"))

    def encode(self) -> bytes:
        raw: dict[str, object] = {"n": self.used, "e": self.slots}
        if self.below_empty is not None:
            raw["to"] = self.below_empty
        return json.dumps(raw, separators=(",", ":")).encode()

    @property
    def emptied(self) -> bool:
        """Sealed with every entry removed: it never holds an entry again."""
        return self.used >= PAGE_SIZE and not self.slots

    def next_to_read(self, page: int) -> int:
        """The page a scan reads after this one (page `page`)."""
        return self.below_empty if self.emptied and self.below_empty is not None else page - 1

    def pending(self, shard: int, page: int, below: int) -> list["_Pending"]:
        """The page's entries with a sequence number under `below`, highest first."""
        found = [
            _Pending(int(created), str(task_id), shard, page * PAGE_SIZE + int(slot))
            for slot, (task_id, created) in self.slots.items()
            if page * PAGE_SIZE + int(slot) < below
        ]
        found.sort(key=lambda entry: entry.seq, reverse=True)
        return found


@dataclass(frozen=True, order=True, slots=True)
class _Pending:
    """An entry read but not yet taken; orders newest last."""

    created: int
    task_id: str
    shard: int
    seq: int


@dataclass(frozen=True, slots=True)
class _OpenPage:
    """The page this process adds to in a shard, and the version it last wrote there
    (None when unknown): the next add starts from it instead of reading the page."""

    page: int
    written: Versioned | None


def _head_page(data: bytes | None) -> int:
    return int(json.loads(data)["page"]) if data else 0


class TaskIndex:
    def __init__(self, state: StateStore) -> None:
        self._state = state
        # Per shard, what this process last wrote: saves reading the head and the page
        # on every create. Another writer makes it stale; that costs one refused
        # write, then the reads.
        self._open: dict[int, _OpenPage] = {}
        # One writer per shard in this process: concurrent creates would otherwise read
        # the same page version and all but one retry. Other replicas still race
        # through the ETag, as they must.
        self._writers = [asyncio.Lock() for _ in range(SHARD_COUNT)]

    async def add(self, task_id: UUID, created_at: datetime) -> int:
        """Adds the task; returns its sequence number in its shard."""
        shard = shard_of(task_id)
        async with self._writers[shard]:
            return await self._add(shard, [str(task_id), _micros(created_at)])

    async def _add(self, shard: int, member: list[str | int]) -> int:
        open_page = self._open.get(shard)
        if open_page is None:
            head = await self._state.get(head_key(shard))
            open_page = _OpenPage(_head_page(head.data if head else None), None)
        page, assumed = open_page.page, open_page.written
        while True:
            slot: int | None = None
            written = b""

            def take_slot(data: bytes | None) -> bytes | None:
                nonlocal slot, written
                current = _Page.decode(data)
                if current.used >= PAGE_SIZE:
                    slot = None
                    return None
                slot = current.used
                current.slots[str(slot)] = member
                current.used += 1
                written = current.encode()
                return written

            replaced = await update_key(
                self._state, page_key(shard, page), take_slot, assumed=assumed
            )
            if slot is not None:
                self._remember(shard, page, replaced, written)
                return page * PAGE_SIZE + slot
            page, assumed = await self._next_page(shard, page), None

    def _remember(self, shard: int, page: int, replaced: Versioned | None, written: bytes) -> None:
        # On other stores the next add reads the page: a guessed ETag that happened to
        # match another writer's version would overwrite that writer's entry.
        etag = (
            etag_after_write(replaced.etag if replaced else None)
            if self._state.etags_count_writes
            else None
        )
        self._open[shard] = _OpenPage(page, Versioned(written, etag) if etag else None)

    async def _next_page(self, shard: int, full: int) -> int:
        """Moves the shard's head past a full page (unless another writer did) and
        returns the page to add to."""
        head = 0

        def advance(data: bytes | None) -> bytes | None:
            nonlocal head
            head = _head_page(data)
            if head > full:
                return None
            head = full + 1
            return json.dumps({"page": head}).encode()

        await update_key(self._state, head_key(shard), advance)
        return head

    async def remove(self, task_id: UUID, seq: int) -> None:
        shard, member = shard_of(task_id), str(task_id)
        page, slot = divmod(seq, PAGE_SIZE)
        written: bytes | None = None

        def drop(data: bytes | None) -> bytes | None:
            nonlocal written
            current = _Page.decode(data)
            if current.slots.get(str(slot), [None])[0] != member:
                written = None
                return None
            del current.slots[str(slot)]
            written = current.encode()
            return written

        async with self._writers[shard]:
            open_page = self._open.get(shard)
            if open_page is not None and open_page.page != page:
                open_page = None  # a sealed page: this process knows nothing of its version
            assumed = open_page.written if open_page is not None else None
            replaced = await update_key(self._state, page_key(shard, page), drop, assumed=assumed)
            if written is None and assumed is not None:
                # The guess is this process's own last write: another replica may have
                # added the entry since. Only the stored page can show it is not there.
                replaced = await update_key(self._state, page_key(shard, page), drop)
            if written is not None and open_page is not None:
                # The next add here starts from this version, not a stale one.
                self._remember(shard, page, replaced, written)
        if written is not None and _Page.decode(written).emptied:
            try:
                await self._link_past(shard, page)
            except (InfrastructureUnavailable, TooMuchContention) as error:
                # Only a shortcut for scans: without it they read the empty page.
                logger.warning("index page %s left unlinked (%s)", page_key(shard, page), error)

    async def _link_past(self, shard: int, page: int) -> None:
        """Make an emptied page name the next page below it that may hold entries.
        Pages below that were emptied already link further down, so deleting the
        oldest tasks first (the usual order) leaves one hop however many pages."""
        target = page - 1
        if target >= 0:
            below = await self._state.get(page_key(shard, target))
            below_page = _Page.decode(below.data if below else None)
            if below_page.emptied:
                target = below_page.next_to_read(target)
        if target == page - 1:
            return  # nothing to skip: a scan reads that page next anyway

        def link(data: bytes | None) -> bytes | None:
            current = _Page.decode(data)
            if not current.emptied or current.below_empty is not None:
                return None
            current.below_empty = target
            return current.encode()

        await update_key(self._state, page_key(shard, page), link)

    async def scan(self, below: Sequence[int] | None, *, max_reads: int) -> "IndexScan":
        """Entries newest first, reading at most `max_reads` batches of pages. `below`
        (per shard: only sequence numbers under it) continues where an earlier scan
        stopped (see IndexScan.below); a position past a shard's head starts at its
        head, so that no cursor makes a scan walk pages that were never written."""
        heads = await self._state.get_many([head_key(s) for s in range(SHARD_COUNT)])
        ends = [
            (_head_page(heads[head_key(s)].data if head_key(s) in heads else None) + 1) * PAGE_SIZE
            for s in range(SHARD_COUNT)
        ]
        start = ends if below is None else [min(b, end) for b, end in zip(below, ends, strict=True)]
        return IndexScan(self._state, start, max_reads=max_reads)


class IndexScan:
    """A merge of the shards, each read newest page first and only when needed.

    A scan reads the index in batches (one page of each shard that needs one, in one
    bulk read) and stops after `max_reads` of them: pages of removed entries, or tasks
    that a filter skips, would otherwise make one request walk the whole index. A scan
    that stopped early is not `exhausted`; its `below` is where a next request continues.
    """

    def __init__(self, state: StateStore, below: list[int], *, max_reads: int) -> None:
        self._state = state
        self._below = below
        self._pending: list[list[_Pending]] = [[] for _ in range(SHARD_COUNT)]
        # The next page to read per shard; -1 once the shard has nothing more.
        self._next_page = [(b - 1) // PAGE_SIZE if b > 0 else -1 for b in below]
        self._reads_left = max_reads

    @property
    def below(self) -> list[int]:
        """Where a scan that continues after the entries taken so far starts."""
        return list(self._below)

    @property
    def exhausted(self) -> bool:
        """Whether every entry has been taken (False while the scan is stalled)."""
        return not any(self._pending) and all(page < 0 for page in self._next_page)

    async def take(self) -> Listed | None:
        """The newest entry not taken yet, or None when there is none or the scan has
        used up its reads (then not `exhausted`)."""
        await self._fill()
        if any(self._starved(s) for s in range(SHARD_COUNT)):
            return None  # stalled: which entry is newest depends on a page not read
        candidates = [pending[0] for pending in self._pending if pending]
        if not candidates:
            return None
        newest = max(candidates)
        self._pending[newest.shard].pop(0)
        self._below[newest.shard] = newest.seq
        return Listed(UUID(newest.task_id), newest.shard, newest.seq)

    async def has_more(self) -> bool:
        """Whether a further take could find an entry (True when stalled: unknown)."""
        await self._fill()
        return not self.exhausted

    def _starved(self, shard: int) -> bool:
        return not self._pending[shard] and self._next_page[shard] >= 0

    async def _fill(self) -> None:
        """Reads the next page of every shard that has none pending, all in one bulk
        read, until each shard has an entry pending or nothing left, or no reads are
        left."""
        while self._reads_left > 0:
            wanted = {
                s: page_key(s, self._next_page[s]) for s in range(SHARD_COUNT) if self._starved(s)
            }
            if not wanted:
                return
            self._reads_left -= 1
            pages = await self._state.get_many(list(wanted.values()))
            for s, key in wanted.items():
                page = self._next_page[s]
                stored = pages.get(key)
                content = _Page.decode(stored.data if stored else None)
                # Slots handed out after this read belong to tasks created after the
                # scan began: a later page of the same listing must not show them.
                self._below[s] = min(self._below[s], page * PAGE_SIZE + content.used)
                self._pending[s] = content.pending(s, page, self._below[s])
                self._next_page[s] = content.next_to_read(page)
                if not self._pending[s]:
                    # Nothing left at or above the next page to read: a stalled scan's
                    # cursor moves past, so that the next request does not read it again.
                    self._below[s] = (self._next_page[s] + 1) * PAGE_SIZE
