"""Recording notifications exactly once, and reading the most recent ones.

Dapr delivers at least once, and two deliveries of one event can run at the same time.
Each notification is stored under its kind and event id with a first-write save (kept
for the dedupe TTL): that record is the claim, naming the attempt that holds it. Claim
-> perform -> mark done: the attempt that holds the claim lists the notification (a
small entry in one of a few "recent" shards, chosen by event id, each updated only over
the version it was read at), logs its line, then marks the claim logged.

A delivery is answered success only once the line is written: by its own attempt, or
by the one in progress in this process that it waited for. A later delivery that finds
the claim logged is a duplicate. One that finds it unfinished takes it over when
nothing can finish it any more: at once if the attempt that held it was this
process's own and has ended; otherwise once it has watched that claim stay unchanged
for longer than any attempt can hold one (`timing`), on its own monotonic clock, so
that no comparison of two replicas' clocks is involved. Until then it asks to be
delivered again. So the line is logged at least once, and twice only if a process dies
(or its attempt loses the mark's answer) between logging and marking.
Shards keep contention and write size small; a read merges them and fetches the records
in one bulk get.
"""

import asyncio
import contextlib
import hashlib
import json
import logging
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, TypeAdapter

from dapr_service_kit.optimistic import TooMuchContention, update_key
from dapr_service_kit.state_store import etag_after_write
from notification_service.models import Notification, NotificationKind
from notification_service.ports import (
    EtagMismatch,
    InfrastructureUnavailable,
    StateStore,
    Versioned,
)
from notification_service.timing import AttemptTiming

notification_lines = logging.getLogger("notifications")
# Not the notification lines above (`make watch` follows those): what happened to them.
logger = logging.getLogger(__name__)

DUPLICATES = Counter(
    "notifications_duplicates_suppressed_total",
    "Deliveries of a notification recorded before (redeliveries, retried notify calls)",
    ["kind"],
)
# Changing this moves entries between shards: it is part of the stored format.
RECENT_SHARDS = 8
# Claims this process's attempts left unfinished, remembered so that the next attempt
# here takes them over at once (a few hundred bytes each; only failures add one).
MAX_ENDED_NOTES = 10_000


class RecentEntry(BaseModel):
    """A notification in the recent list, all that GET /notifications shows of it (its
    line is derived again): the list outlives the claims, whose TTL is short. Entries
    written before they carried the notification have only the first three fields; their
    notification is read from its claim."""

    model_config = ConfigDict(frozen=True)

    kind: NotificationKind
    event_id: str
    received_at: datetime
    event_type: str | None = None
    task_id: UUID | None = None
    title: str | None = None
    priority: int | None = None

    @classmethod
    def of(cls, notification: Notification) -> "RecentEntry":
        return cls.model_validate(notification.model_dump(exclude={"message"}))

    def notification(self) -> Notification | None:
        if self.event_type is None:
            return None  # an entry of the older format
        return Notification(
            event_id=self.event_id,
            kind=self.kind,
            event_type=self.event_type,
            task_id=self.task_id,
            title=self.title,
            priority=self.priority,
            received_at=self.received_at,
            message=describe(self.kind, self.event_type, self.task_id, self.title, self.priority),
        )


_recent_entries = TypeAdapter(list[RecentEntry])


class Claim(BaseModel):
    """What is stored under a notification's claim key: who holds it and whether its
    line is written. Small, as every write keeps one for the dedupe TTL; the
    notification itself is in the recent list."""

    # When the attempt that holds it took it (the first claim or a take-over), by that
    # replica's clock: shown, never compared with another replica's clock.
    taken_at: datetime
    # The attempt that holds it (a random id; empty in claims stored before it existed).
    holder: str = ""
    logged: bool = False
    # Claims stored before the recent list carried notifications held it here.
    notification: Notification | None = None


def _claim_from(data: bytes) -> Claim:
    """Claims stored before the claim record existed held the bare notification, and
    were logged by the delivery that stored them."""
    raw = json.loads(data)
    if "taken_at" in raw:
        return Claim.model_validate(raw)
    notification = Notification.model_validate(raw)
    return Claim(notification=notification, taken_at=notification.received_at, logged=True)


def claim_key(kind: NotificationKind, event_id: str) -> str:
    return f"seen:{kind.value}:{event_id}"


def recent_shard_key(kind: NotificationKind, event_id: str) -> str:
    shard = (
        int.from_bytes(hashlib.sha256(f"{kind.value}:{event_id}".encode()).digest()[:4])
        % RECENT_SHARDS
    )
    return recent_shard_key_of(shard)


def recent_shard_key_of(shard: int) -> str:
    return f"notifications:recent:{shard}"


def utc_now() -> datetime:
    return datetime.now(UTC)


def _printable(text: str) -> str:
    """Control and format characters (line breaks, bidi overrides) escaped, so that a
    title cannot split, forge or visually reorder a log line."""
    return "".join(
        f"\\u{ord(c):04x}" if unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp"} else c
        for c in text
    )


def describe(
    kind: NotificationKind,
    event_type: str,
    task_id: UUID | None,
    title: str | None,
    priority: int | None,
) -> str:
    """The log line, e.g. `NOTIFY task.completed task=3f2c… "Write the spec" (priority 2)`.
    The title is JSON-quoted."""
    parts = [kind.value.upper(), _printable(event_type)]
    if task_id is not None:
        parts.append(f"task={task_id}")
    if title is not None:
        parts.append(_printable(json.dumps(title, ensure_ascii=False)))
    if priority is not None:
        parts.append(f"(priority {priority})")
    return " ".join(parts)


def _new_holder() -> str:
    return uuid4().hex


@dataclass(slots=True)
class _Watched:
    """A claim held elsewhere, as this attempt first saw it, on its monotonic clock."""

    holder: str
    etag: str
    since: float


class NotificationLog:
    def __init__(
        self,
        state: StateStore,
        *,
        capacity: int,
        dedupe_ttl_seconds: int,
        clock: Callable[[], datetime] = utc_now,
        timing: AttemptTiming | None = None,
    ) -> None:
        self._state = state
        self._capacity = capacity
        self._dedupe_ttl = dedupe_ttl_seconds
        self._clock = clock
        self._timing = timing or AttemptTiming()
        # The mark after the line: one write, and a read first on stores whose ETags do
        # not tell the writer its version.
        self._mark_calls = 1 if state.etags_count_writes else 2
        # One writer per recent shard in this process: concurrent deliveries (the
        # pubsub hands out many at once) would otherwise read the same version and all
        # but one retry, re-reading the shard each time. Other replicas still race
        # through the ETag.
        self._writers = {
            recent_shard_key_of(shard): asyncio.Lock() for shard in range(RECENT_SHARDS)
        }
        self._queued: dict[str, list[_PendingInsert]] = {key: [] for key in self._writers}
        # This process's attempt at each notification in progress, by claim key: another
        # delivery of it waits for its outcome instead of answering before the line is
        # written (or starting a second attempt).
        self._attempts: dict[str, asyncio.Task[bool]] = {}
        # Claims this process's attempts held when they ended unfinished, by claim key:
        # holder -> whether its line was written. Nothing here writes them any more (and
        # every write of theirs that still lands is conditional on a version), so the
        # next attempt here takes them over at once.
        self._ended: dict[str, dict[str, bool]] = {}

    @property
    def timing(self) -> AttemptTiming:
        return self._timing

    async def record(
        self,
        kind: NotificationKind,
        *,
        event_id: str,
        event_type: str,
        task_id: UUID | None = None,
        title: str | None = None,
        priority: int | None = None,
        wait_seconds: float | None = None,
    ) -> bool:
        """Record and log the notification; False if it had been recorded already, or
        another delivery of it has just done so. Returns only once the line is written.
        Raises DeliveryInProgress if the attempt at it (this delivery's, or another's
        it waits for) has not finished within `wait_seconds` (None: no limit), and
        whatever ended that attempt otherwise: the caller asks to be delivered again."""
        notification = Notification(
            event_id=event_id,
            kind=kind,
            event_type=event_type,
            task_id=task_id,
            title=title,
            priority=priority,
            received_at=self._clock(),
            message=describe(kind, event_type, task_id, title, priority),
        )
        key = claim_key(kind, event_id)
        attempt = self._attempts.get(key)
        joined = attempt is not None
        if attempt is None:
            # A task of its own: it runs to its end even if this delivery's caller gives
            # up, and the next delivery finds it here.
            attempt = asyncio.create_task(self._attempt(key, notification))
            self._attempts[key] = attempt
            attempt.add_done_callback(lambda done: self._attempt_done(key, done))
        finished, _ = await asyncio.wait({attempt}, timeout=wait_seconds)
        if not finished:
            raise DeliveryInProgress(key)
        recorded = attempt.result() and not joined
        if not recorded:
            DUPLICATES.labels(kind.value).inc()
            logger.info("duplicate %s %s: recorded before, nothing to do", kind.value, event_id)
        return recorded

    def _attempt_done(self, key: str, attempt: "asyncio.Task[bool]") -> None:
        if self._attempts.get(key) is attempt:
            del self._attempts[key]
        if attempt.cancelled():
            return
        error = attempt.exception()
        if error is not None:
            # Its callers may have stopped waiting: say it here, once.
            logger.warning("%s: not recorded (%s); a redelivery will", key, error)

    async def close(self) -> None:
        """Stop the attempts in progress (the process is stopping): their claims are
        taken over by the redeliveries."""
        attempts = list(self._attempts.values())
        for attempt in attempts:
            attempt.cancel()
        await asyncio.gather(*attempts, return_exceptions=True)

    async def _attempt(self, key: str, notification: Notification) -> bool:
        """This process's attempt: claim the notification, or take over a claim nobody
        can finish any more, then finish it. False if it was logged before."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._timing.watch_seconds
        watched: _Watched | None = None
        stored: Versioned | None = None
        while True:
            if stored is None:
                claim = Claim(taken_at=self._clock(), holder=_new_holder())
                if await self._hold(key, notification, claim, replacing=None):
                    return True
            stored = await self._state.get(key)
            if stored is None:
                continue  # expired between the two calls: a new claim
            held = _claim_from(stored.data)
            if held.logged:
                self._ended.pop(key, None)
                # Done before; its entry may still be missing if that attempt ended
                # between marking and answering, which the insert repairs (as of then).
                listed = held.notification or notification.model_copy(
                    update={"received_at": held.taken_at}
                )
                await self._insert(listed, may_be_evicted=True)
                return False
            ended_here = self._ended.get(key, {})
            if ended_here.get(held.holder):
                # This process wrote the line and lost the mark: mark it, no new line.
                with contextlib.suppress(EtagMismatch):
                    await self._save_claim(
                        key, held.model_copy(update={"logged": True}), etag=stored.etag
                    )
                continue  # read again: marked (by this or another), or taken over
            now = loop.time()
            if held.holder not in ended_here:
                if watched is None or (watched.holder, watched.etag) != (held.holder, stored.etag):
                    watched = _Watched(held.holder, stored.etag, since=now)
                if now - watched.since < self._timing.take_over_after_seconds:
                    # Its holder may still be at work on it (in another process).
                    if now >= give_up_at:
                        raise DeliveryInProgress(key)
                    await asyncio.sleep(self._timing.poll_seconds)
                    continue
            taken = Claim(taken_at=self._clock(), holder=_new_holder())
            if await self._hold(key, notification, taken, replacing=stored):
                return True
            # Another took it over first (or marked it): read again.

    async def _hold(
        self, key: str, notification: Notification, claim: Claim, *, replacing: Versioned | None
    ) -> bool:
        """Write the claim (a first write, or over `replacing`) and finish it: list, log,
        mark. False if another claim was there first. All of it within the hold, the
        line only while the mark still fits after it (see timing)."""
        loop = asyncio.get_running_loop()
        log_by = loop.time() + self._timing.log_within_seconds(self._mark_calls)
        logged = False
        try:
            async with asyncio.timeout(self._timing.hold_seconds):
                try:
                    await self._save_claim(key, claim, etag=replacing.etag if replacing else None)
                except EtagMismatch:
                    return False
                await self._insert(notification, may_be_evicted=replacing is not None)
                if loop.time() > log_by:
                    raise HoldExpired(f"{key}: too slow to log before its hold ends")
                notification_lines.info(
                    notification.message, extra={"event_id": notification.event_id}
                )
                logged = True
                held_etag = (
                    etag_after_write(replacing.etag if replacing else None)
                    if self._state.etags_count_writes
                    else None
                )
                await self._mark_logged(key, claim, held_etag)
        except BaseException as error:
            # The claim may have been written (an answer lost): this process no longer
            # works on it.
            self._note_ended(key, claim.holder, logged)
            if isinstance(error, TimeoutError):
                raise HoldExpired(f"{key}: the store did not answer within the hold") from error
            raise
        self._ended.pop(key, None)
        return True

    def _note_ended(self, key: str, holder: str, logged: bool) -> None:
        holders = self._ended.pop(key, {})
        holders[holder] = logged
        self._ended[key] = holders  # now the newest
        while len(self._ended) > MAX_ENDED_NOTES:
            del self._ended[next(iter(self._ended))]

    async def _save_claim(self, key: str, claim: Claim, *, etag: str | None) -> None:
        await self._state.save(
            key,
            claim.model_dump_json(exclude_none=True).encode(),
            etag=etag,
            first_write=etag is None,
            ttl_seconds=self._dedupe_ttl,
        )

    async def _mark_logged(self, key: str, claim: Claim, held_etag: str | None) -> None:
        """Mark the claim logged if it is still the one this attempt wrote (`held_etag`:
        that version, when the store's ETags tell it; else read it back)."""
        if held_etag is None:
            stored = await self._state.get(key)
            if stored is None or _claim_from(stored.data).holder != claim.holder:
                return  # expired, or taken over meanwhile: the other attempt marks it
            held_etag = stored.etag
        logged = claim.model_copy(update={"logged": True})
        # A mismatch: taken over since; not ours to mark. (The claim cannot expire and be
        # claimed again within one hold: the dedupe TTL is minutes, a hold seconds.)
        with contextlib.suppress(EtagMismatch):
            await self._save_claim(key, logged, etag=held_etag)

    async def recent(self, limit: int) -> list[Notification]:
        shards = await self._state.get_many(
            [recent_shard_key_of(shard) for shard in range(RECENT_SHARDS)]
        )
        entries = sorted(
            (e for shard in shards.values() for e in _recent_entries.validate_json(shard.data)),
            key=lambda e: e.received_at,
            reverse=True,
        )[:limit]
        # Entries of the older format have their notification in its claim; one whose
        # claim has expired is skipped.
        older = [claim_key(e.kind, e.event_id) for e in entries if e.event_type is None]
        records = await self._state.get_many(older) if older else {}
        found = []
        for entry in entries:
            notification = entry.notification()
            if notification is None:
                record = records.get(claim_key(entry.kind, entry.event_id))
                notification = _claim_from(record.data).notification if record else None
            if notification is not None:
                found.append(notification)
        return found

    async def _insert(self, notification: Notification, *, may_be_evicted: bool) -> bool:
        """List the notification in its recent shard; False if it was there already or
        too old to keep. Inserts waiting for the same shard are written together: one
        read and one write for all of them (under load, dozens)."""
        key = recent_shard_key(notification.kind, notification.event_id)
        pending = _PendingInsert(
            RecentEntry.of(notification),
            may_be_evicted,
            asyncio.get_running_loop().create_future(),
        )
        self._queued[key].append(pending)
        async with self._writers[key]:
            if not pending.outcome.done():
                batch, self._queued[key] = self._queued[key], []
                try:
                    outcomes = await self._insert_entries(key, batch)
                except Exception as error:
                    for waiting in batch:
                        waiting.outcome.set_exception(error)
                except BaseException:
                    # Cancelled: whoever holds the lock next writes the others.
                    self._queued[key][:0] = [p for p in batch if p is not pending]
                    raise
                else:
                    for waiting, outcome in zip(batch, outcomes, strict=True):
                        waiting.outcome.set_result(outcome)
        return pending.outcome.result()

    async def _insert_entries(self, key: str, batch: list["_PendingInsert"]) -> list[bool]:
        """Insert the batch's entries into the shard in one write; for each, whether it
        was listed (False: there already, or too old to keep)."""
        capacity = max(1, self._capacity // RECENT_SHARDS)
        outcomes: list[bool] = []

        def insert(data: bytes | None) -> bytes | None:
            entries = _recent_entries.validate_json(data) if data is not None else []
            listed = {(e.kind, e.event_id) for e in entries}
            outcomes.clear()
            for pending in batch:
                entry = pending.entry
                outcomes.append(
                    (entry.kind, entry.event_id) not in listed
                    and not (
                        pending.may_be_evicted
                        and len(entries) >= capacity
                        and entry.received_at < entries[-1].received_at
                    )
                )
                if outcomes[-1]:
                    listed.add((entry.kind, entry.event_id))
                    entries.append(entry)
                    entries.sort(key=lambda e: e.received_at, reverse=True)
                    del entries[capacity:]
            if not any(outcomes):
                return None
            return _recent_entries.dump_json(entries, exclude_none=True)

        await update_key(self._state, key, insert)
        return outcomes


@dataclass(frozen=True, slots=True)
class _PendingInsert:
    entry: RecentEntry
    may_be_evicted: bool
    outcome: "asyncio.Future[bool]"


class DeliveryInProgress(TooMuchContention):
    """An attempt holds the claim and may still finish it: ask to be redelivered
    (answered like contention: RETRY to the sidecar, 503 to an invocation)."""


class HoldExpired(InfrastructureUnavailable):
    """The store was too slow for an attempt to finish within its hold: it gave up, its
    line unwritten (answered like an outage: RETRY, or 503)."""
