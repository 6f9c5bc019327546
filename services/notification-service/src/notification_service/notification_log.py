"""Recording notifications exactly once, and reading the most recent ones.

Dapr delivers at least once, and two deliveries of one event can run at the same time.
Each notification is stored under its kind and event id with a first-write save (kept
for the dedupe TTL): that record is the claim. Claim -> perform -> mark done: the
delivery that holds the claim lists the notification (a small entry in one of a few
"recent" shards, chosen by event id, each updated only over the version it was read
at), logs its line, then marks the claim logged. A later delivery that finds the claim
logged is a duplicate. One that finds it not logged takes over what an earlier attempt
left unfinished (a crash, a lost answer) once the claim is older than TAKE_OVER_AFTER,
and asks to be redelivered before that (another delivery may be at work on it); a
second delivery of an event this process is working on right now is a duplicate.
So the line is logged at least once, and twice only if a delivery dies between logging
and marking, or two replicas take the same event at the same instant.
Shards keep contention and write size small; a read merges them and fetches the records
in one bulk get.
"""

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, TypeAdapter

from dapr_service_kit.state_store import etag_after_write
from notification_service.models import Notification, NotificationKind
from notification_service.ports import EtagMismatch, StateStore

logger = logging.getLogger("notifications")
# Not the notification lines above (`make watch` follows those): what happened to them.
activity = logging.getLogger(__name__)

MAX_ATTEMPTS = 64
DUPLICATES = Counter(
    "notifications_duplicates_suppressed_total",
    "Deliveries of a notification recorded before (redeliveries, retried notify calls)",
    ["kind"],
)
# A claim not marked logged after this long belongs to an attempt that will not finish
# it. Well above one attempt's few store calls, well below the subscription's retry
# budget (about 6 s) and the redelivery of a crashed consumer's message (30 s).
TAKE_OVER_AFTER = timedelta(seconds=2)
# Changing this moves entries between shards: it is part of the stored format.
RECENT_SHARDS = 8


class RecentEntry(BaseModel):
    """A notification's place in the recent list; the record itself is the claim."""

    model_config = ConfigDict(frozen=True)

    kind: NotificationKind
    event_id: str
    received_at: datetime


_recent_entries = TypeAdapter(list[RecentEntry])


class Claim(BaseModel):
    """What is stored under a notification's claim key."""

    notification: Notification
    # When the attempt that holds it took it (the first claim or a take-over).
    taken_at: datetime
    logged: bool = False


def _claim_from(data: bytes) -> Claim:
    """Claims stored before the claim record existed held the bare notification, and
    were logged by the delivery that stored them."""
    raw = json.loads(data)
    if "notification" in raw:
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


class NotificationLog:
    def __init__(
        self,
        state: StateStore,
        *,
        capacity: int,
        dedupe_ttl_seconds: int,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._state = state
        self._capacity = capacity
        self._dedupe_ttl = dedupe_ttl_seconds
        self._clock = clock
        # One writer per recent shard in this process: concurrent deliveries (the
        # pubsub hands out many at once) would otherwise read the same version and all
        # but one retry, re-reading the shard each time. Other replicas still race
        # through the ETag.
        self._writers = {
            recent_shard_key_of(shard): asyncio.Lock() for shard in range(RECENT_SHARDS)
        }
        self._queued: dict[str, list[_PendingInsert]] = {key: [] for key in self._writers}
        # Claim keys of the deliveries this process is recording now.
        self._in_flight: set[str] = set()

    async def record(
        self,
        kind: NotificationKind,
        *,
        event_id: str,
        event_type: str,
        task_id: UUID | None = None,
        title: str | None = None,
        priority: int | None = None,
    ) -> bool:
        """Record and log the notification; False if it had been recorded already."""
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
        if key in self._in_flight:
            recorded = False  # this process is recording it right now
        else:
            self._in_flight.add(key)
            try:
                recorded = await self._record(key, notification)
            finally:
                self._in_flight.discard(key)
        if not recorded:
            DUPLICATES.labels(kind.value).inc()
            activity.info("duplicate %s %s: recorded before, nothing to do", kind.value, event_id)
        return recorded

    async def _record(self, key: str, notification: Notification) -> bool:
        now = self._clock()
        claim = Claim(notification=notification, taken_at=now)
        try:
            await self._save_claim(key, claim, etag=None)
            first = True
            replaced: str | None = None
        except EtagMismatch:
            stored = await self._state.get(key)
            if stored is None:  # expired between the two calls: a new claim
                return await self._record(key, notification)
            held = _claim_from(stored.data)
            if held.logged:
                # Done before; its entry may still be missing if that attempt ended
                # between marking and answering, which the insert repairs.
                await self._insert(held.notification, may_be_evicted=True)
                return False
            if now - held.taken_at < TAKE_OVER_AFTER:
                raise DeliveryInProgress(key) from None
            claim = held.model_copy(update={"taken_at": now})
            try:
                await self._save_claim(key, claim, etag=stored.etag)
            except EtagMismatch:
                raise DeliveryInProgress(key) from None
            first = False
            replaced = stored.etag
        await self._insert(claim.notification, may_be_evicted=not first)
        logger.info(claim.notification.message, extra={"event_id": claim.notification.event_id})
        held_etag = etag_after_write(replaced) if self._state.etags_count_writes else None
        await self._mark_logged(key, claim, held_etag)
        return True

    async def _save_claim(self, key: str, claim: Claim, *, etag: str | None) -> None:
        await self._state.save(
            key,
            claim.model_dump_json().encode(),
            etag=etag,
            first_write=etag is None,
            ttl_seconds=self._dedupe_ttl,
        )

    async def _mark_logged(self, key: str, claim: Claim, held_etag: str | None) -> None:
        """Mark the claim logged if it is still the one this attempt wrote (`held_etag`:
        that version, when the store's ETags tell it; else read it back)."""
        if held_etag is None:
            stored = await self._state.get(key)
            if stored is None or _claim_from(stored.data).taken_at != claim.taken_at:
                return  # expired, or taken over meanwhile: the other attempt marks it
            held_etag = stored.etag
        logged = claim.model_copy(update={"logged": True})
        # A mismatch: taken over since; not ours to mark. (The claim cannot expire and be
        # claimed again within one delivery: it lives for the dedupe TTL, days.)
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
        records = await self._state.get_many([claim_key(e.kind, e.event_id) for e in entries])
        # A record whose dedupe TTL ran out is gone; its entry is skipped.
        found = [records.get(claim_key(e.kind, e.event_id)) for e in entries]
        return [_claim_from(r.data).notification for r in found if r is not None]

    async def _insert(self, notification: Notification, *, may_be_evicted: bool) -> bool:
        """List the notification in its recent shard; False if it was there already or
        too old to keep. Inserts waiting for the same shard are written together: one
        read and one write for all of them (under load, dozens)."""
        key = recent_shard_key(notification.kind, notification.event_id)
        pending = _PendingInsert(
            RecentEntry(
                kind=notification.kind,
                event_id=notification.event_id,
                received_at=notification.received_at,
            ),
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
        capacity = max(1, self._capacity // RECENT_SHARDS)
        for attempt in range(MAX_ATTEMPTS):
            stored = await self._state.get(key)
            entries = _recent_entries.validate_json(stored.data) if stored else []
            listed = {(e.kind, e.event_id) for e in entries}
            outcomes = []
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
                return outcomes
            data = _recent_entries.dump_json(entries)
            try:
                if stored is None:
                    await self._state.save(key, data, etag=None, first_write=True)
                else:
                    await self._state.save(key, data, etag=stored.etag)
            except EtagMismatch:
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311
                continue
            return outcomes
        raise TooMuchContention(key)


@dataclass(frozen=True, slots=True)
class _PendingInsert:
    entry: RecentEntry
    may_be_evicted: bool
    outcome: "asyncio.Future[bool]"


class TooMuchContention(Exception):
    pass


class DeliveryInProgress(TooMuchContention):
    """Another attempt holds the claim and may still finish it: ask to be redelivered
    (answered like contention: RETRY to the sidecar, 503 to an invocation)."""
