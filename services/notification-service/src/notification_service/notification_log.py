"""Recording notifications exactly once, and reading the most recent ones.

Dapr delivers at least once, and two deliveries of one event can run at the same time.
Each notification is claimed under its event id with a first-write save (kept for the
dedupe TTL), and the recent list, one key updated only over the version it was read
at, decides who logs it: a notification is logged by the one delivery that inserts it.
A delivery that finds the claim taken but the entry missing from the list (the first
delivery crashed in between) inserts it, unless the list has moved past it.
"""

import asyncio
import json
import logging
import random
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

from pydantic import TypeAdapter

from notification_service.models import Notification, NotificationKind
from notification_service.ports import EtagMismatch, StateStore

logger = logging.getLogger("notifications")

RECENT_KEY = "notifications:recent"
MAX_ATTEMPTS = 64

_recent_list = TypeAdapter(list[Notification])


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
        claim_key = f"seen:{kind.value}:{event_id}"
        try:
            await self._state.save(
                claim_key,
                notification.model_dump_json().encode(),
                etag=None,
                first_write=True,
                ttl_seconds=self._dedupe_ttl,
            )
            first_claim = True
        except EtagMismatch:
            claimed = await self._state.get(claim_key)
            if claimed is not None:
                notification = Notification.model_validate_json(claimed.data)
            first_claim = False
        inserted = await self._insert(notification, may_be_evicted=not first_claim)
        if inserted:
            logger.info(notification.message)
        return inserted

    async def recent(self, limit: int) -> list[Notification]:
        stored = await self._state.get(RECENT_KEY)
        return _recent_list.validate_json(stored.data)[:limit] if stored else []

    async def _insert(self, notification: Notification, *, may_be_evicted: bool) -> bool:
        for attempt in range(MAX_ATTEMPTS):
            stored = await self._state.get(RECENT_KEY)
            entries = _recent_list.validate_json(stored.data) if stored else []
            if any(
                e.kind == notification.kind and e.event_id == notification.event_id for e in entries
            ):
                return False
            if (
                may_be_evicted
                and len(entries) >= self._capacity
                and notification.received_at < entries[-1].received_at
            ):
                return False
            entries.append(notification)
            entries.sort(key=lambda e: e.received_at, reverse=True)
            data = _recent_list.dump_json(entries[: self._capacity])
            try:
                if stored is None:
                    await self._state.save(RECENT_KEY, data, etag=None, first_write=True)
                else:
                    await self._state.save(RECENT_KEY, data, etag=stored.etag)
            except EtagMismatch:
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311
                continue
            return True
        raise TooMuchContention(RECENT_KEY)


class TooMuchContention(Exception):
    pass
