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

Emptied pages. A full page whose entries have all been removed never holds an entry
again (its slots are never reused). Consecutive emptied pages form a run. Whoever
empties a page merges it with the runs beside it, whatever the order pages empty in:
the run's top page names the next page below the run that may hold entries (`to`),
and its bottom page names the run's top (`up`), so that the next merge at either end
finds the other end in one read. A scan that comes down to a run meets its top and
jumps past it: per shard it reads at most one emptied page above each page that holds
entries, and one below the last, however many tasks were deleted. A scan that lands
inside a run (at a cursor taken before its pages emptied) reads the top that page
knows of next, instead of walking down page by page.

Links only ever move outwards (`to` down, `up` up) and each is written on the version
it was computed from, so racing merges cannot undo each other; a merge reads its
neighbours after emptying its own page, so of two neighbours emptied at once at least
one sees the other. A link can fall short of the run's end (a merge that failed or
raced), never past a page that may hold entries: scans follow it further, and the next
merge beside it reads through it.

An entry is added *before* its task is committed and removed *after* its task is
deleted, so the index is always a superset of the live tasks: a task whose create
returned 201 is always listed. Readers skip entries whose task is missing, deleted, or
records another sequence number (a replayed create that crashed before its commit
leaves such a stray entry), and remove them (`repair`); an entry whose task is missing
only once it is older than any create can still commit (see TaskService).
"""

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from dapr_service_kit.optimistic import TooMuchContention, update_key
from dapr_service_kit.state_store import etag_after_write
from task_api.ports import InfrastructureUnavailable, StateStore, Versioned

logger = logging.getLogger(__name__)

# Both are part of the stored format: changing either moves entries to other keys.
SHARD_COUNT = 16
PAGE_SIZE = 32


# The most reads one merge makes through earlier links (a link left short costs scans
# a read more, nothing worse), and the most pages one list rewrites to remove the
# entries of tasks that are gone (the lists that come next remove the rest).
MAX_LINK_HOPS = 8
MAX_REPAIRED_PAGES = 16

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(at: datetime) -> int:
    """Entry times are stored as integer microseconds: compact, and compared without
    parsing."""
    return (at - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Listed:
    """An entry as a list meets it: what it names, where it sits, and when it was
    added (in microseconds)."""

    task_id: UUID
    shard: int
    seq: int
    added: int

    def added_before(self, moment: datetime) -> bool:
        return self.added < _micros(moment)


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
    # slot -> [task id, time the entry was added in microseconds]
    slots: dict[str, list[str | int]] = field(default_factory=dict)
    # Only on an emptied page: the next page below that may hold entries (-1: none)...
    to: int | None = None
    # ... and a page above, up to which every page is emptied.
    up: int | None = None

    @classmethod
    def decode(cls, data: bytes | None) -> "_Page":
        if not data:
            return cls()
        raw = json.loads(data)
        return cls(used=raw["n"], slots=raw["e"], to=raw.get("to"), up=raw.get("up"))

    def encode(self) -> bytes:
        raw: dict[str, object] = {"n": self.used, "e": self.slots}
        if self.to is not None:
            raw["to"] = self.to
        if self.up is not None:
            raw["up"] = self.up
        return json.dumps(raw, separators=(",", ":")).encode()

    @property
    def emptied(self) -> bool:
        """Sealed with every entry removed: it never holds an entry again."""
        return self.used >= PAGE_SIZE and not self.slots

    def next_to_read(self, page: int) -> int:
        """The page a scan reads after this one (page `page`)."""
        return self.to if self.emptied and self.to is not None else page - 1

    def top_of_run(self, page: int) -> int:
        """The highest page known emptied, with every page between, from this emptied
        page (page `page`) up."""
        return max(page, self.up) if self.up is not None else page

    def pending(self, shard: int, page: int, below: int) -> list["_Pending"]:
        """The page's entries with a sequence number under `below`, highest first."""
        found = [
            _Pending(int(added), str(task_id), shard, page * PAGE_SIZE + int(slot))
            for slot, (task_id, added) in self.slots.items()
            if page * PAGE_SIZE + int(slot) < below
        ]
        found.sort(key=lambda entry: entry.seq, reverse=True)
        return found


@dataclass(frozen=True, order=True, slots=True)
class _Pending:
    """An entry read but not yet taken; orders newest last."""

    added: int
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

    async def add(self, task_id: UUID, at: datetime) -> int:
        """Adds the task at time `at` (which orders the list, and tells a list how long
        the entry has waited for its task); returns its sequence number in its shard."""
        shard = shard_of(task_id)
        async with self._writers[shard]:
            return await self._add(shard, [str(task_id), _micros(at)])

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
        page, slot = divmod(seq, PAGE_SIZE)
        await self._remove_from_page(shard_of(task_id), page, {str(slot): str(task_id)})

    async def repair(self, dangling: Sequence[Listed]) -> None:
        """Removes entries a list found naming a task that is gone: one write per page,
        on at most MAX_REPAIRED_PAGES pages (the lists that come next do the rest)."""
        by_page: dict[tuple[int, int], dict[str, str]] = {}
        for entry in dangling:
            page, slot = divmod(entry.seq, PAGE_SIZE)
            by_page.setdefault((entry.shard, page), {})[str(slot)] = str(entry.task_id)
        for (shard, page), members in list(by_page.items())[:MAX_REPAIRED_PAGES]:
            await self._remove_from_page(shard, page, members)

    async def _remove_from_page(self, shard: int, page: int, members: dict[str, str]) -> None:
        """Removes the entries in these slots (slot -> task id) that still name their
        task, then merges the page with its neighbours if that emptied it."""
        written: bytes | None = None

        def drop(data: bytes | None) -> bytes | None:
            nonlocal written
            current = _Page.decode(data)
            present = [s for s, task in members.items() if current.slots.get(s, [None])[0] == task]
            if not present:
                written = None
                return None
            for slot in present:
                del current.slots[slot]
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
                await self._merge_emptied(shard, page)
            except (InfrastructureUnavailable, TooMuchContention) as error:
                # Only a shortcut for scans: without it they read the page, and the next
                # merge beside it reads through it.
                logger.warning("index page %s left unlinked (%s)", page_key(shard, page), error)

    async def _merge_emptied(self, shard: int, page: int) -> None:
        """Merges the page, just emptied, with the runs of emptied pages beside it: the
        merged run's top names the page below it that may hold entries, its bottom
        names its top. When no merge raced this one: one or two bulk reads, and up to
        three conditional writes."""
        low, top = await self._run_around(shard, page)
        if (low, top) == (page - 1, page):
            return  # a run of one page: a scan reads the page below it next anyway
        await self._extend_links(shard, page, to=low, up=top)
        if top != page:
            # Scans coming down meet the run at its top.
            await self._extend_links(shard, top, to=low, up=top)
        if low + 1 != page:
            # A page emptied below the run finds its top from here.
            await self._extend_links(shard, low + 1, to=low, up=top)

    async def _run_around(self, shard: int, page: int) -> tuple[int, int]:
        """The run of emptied pages around `page`: the page below it that may hold
        entries (-1: none), and its top. Reads through links of earlier merges, in both
        directions at once, at most MAX_LINK_HOPS reads."""
        low, top = page - 1, page
        low_found, top_found = low < 0, False
        for _ in range(MAX_LINK_HOPS):
            wanted = []
            if not low_found:
                wanted.append(page_key(shard, low))
            if not top_found:
                wanted.append(page_key(shard, top + 1))
            if not wanted:
                break
            pages = await self._state.get_many(wanted)
            if not low_found:
                stored = pages.get(page_key(shard, low))
                below = _Page.decode(stored.data if stored else None)
                if below.emptied:
                    low = below.next_to_read(low)
                low_found = not below.emptied or low < 0
            if not top_found:
                stored = pages.get(page_key(shard, top + 1))
                above = _Page.decode(stored.data if stored else None)
                if above.emptied:
                    top = above.top_of_run(top + 1)
                top_found = not above.emptied
        return low, top

    async def _extend_links(self, shard: int, page: int, *, to: int, up: int) -> None:
        """Moves an emptied page's links out to `to` and `up`, never back in."""

        def extend(data: bytes | None) -> bytes | None:
            current = _Page.decode(data)
            if not current.emptied:
                return None
            known_to, known_up = current.next_to_read(page), current.top_of_run(page)
            if to >= known_to and up <= known_up:
                return None
            current.to, current.up = min(to, known_to), max(up, known_up)
            return current.encode()

        await update_key(self._state, page_key(shard, page), extend)

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
        # Per shard, while the scan reads the top of a run it landed inside (see _after):
        # the link of the page it landed on.
        self._landed_link: list[int | None] = [None] * SHARD_COUNT
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
        return Listed(UUID(newest.task_id), newest.shard, newest.seq, newest.added)

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
                self._next_page[s] = self._after(s, page, content)
                if not self._pending[s]:
                    # Nothing left at or above the next page to read: a stalled scan's
                    # cursor moves past, so that the next request does not read it again
                    # (never up: the top of a run holds no entry).
                    self._below[s] = min(self._below[s], (self._next_page[s] + 1) * PAGE_SIZE)

    def _after(self, shard: int, page: int, content: _Page) -> int:
        """The page to read after this one. A scan that comes down to a run meets its
        top, which links past the run. One that lands inside a run (at a cursor taken
        before its pages emptied) may find there only a link to the next page down, so
        it reads the run's top first, and goes on from the lower of the two links."""
        link = content.next_to_read(page)
        landed_link, self._landed_link[shard] = self._landed_link[shard], None
        if landed_link is not None:
            return min(link, landed_link)
        if content.emptied and content.top_of_run(page) > page:
            self._landed_link[shard] = link
            return content.top_of_run(page)
        return link
