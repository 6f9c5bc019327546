"""Exactly-once recording on an in-memory store."""

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from notification_fakes import MemoryState

from notification_service.models import Notification, NotificationKind
from notification_service.notification_log import (
    RECENT_SHARDS,
    Claim,
    DeliveryInProgress,
    NotificationLog,
    claim_key,
    describe,
    recent_shard_key,
)
from notification_service.ports import EtagMismatch, InfrastructureUnavailable, Versioned


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def make_log(state: MemoryState, capacity: int = 100) -> NotificationLog:
    return NotificationLog(state, capacity=capacity, dedupe_ttl_seconds=60, clock=Clock())


def log_clock(log: NotificationLog) -> Clock:
    clock = log._clock
    assert isinstance(clock, Clock)
    return clock


async def record(
    log: NotificationLog, event_id: str, kind: NotificationKind = NotificationKind.NOTIFY
) -> bool:
    return await log.record(
        kind, event_id=event_id, event_type="task.completed", task_id=uuid4(), title="T", priority=2
    )


def test_bidi_overrides_and_line_separators_are_escaped() -> None:
    line = describe(NotificationKind.NOTIFY, "task.created", None, "a\u202eb\u2028c", None)
    assert line == 'NOTIFY task.created "a\\u202eb\\u2028c"'


def test_the_log_line_quotes_the_title() -> None:
    task_id = uuid4()
    line = describe(NotificationKind.NOTIFY, "task.completed", task_id, 'Say "hi"\nFAKE', 2)
    assert line == f'NOTIFY task.completed task={task_id} "Say \\"hi\\"\\nFAKE" (priority 2)'
    assert "\n" not in line


async def test_a_repeated_event_is_recorded_and_logged_once(
    state: MemoryState, caplog: pytest.LogCaptureFixture
) -> None:
    log = make_log(state)
    caplog.set_level(logging.INFO, logger="notifications")
    assert await record(log, "e1") is True
    assert await record(log, "e1") is False
    assert [n.event_id for n in await log.recent(10)] == ["e1"]
    assert len([r for r in caplog.records if r.name == "notifications"]) == 1


async def test_the_same_event_may_be_both_activity_and_notify(state: MemoryState) -> None:
    log = make_log(state)
    assert await record(log, "e1", NotificationKind.ACTIVITY)
    assert await record(log, "e1", NotificationKind.NOTIFY)
    assert len(await log.recent(10)) == 2


async def test_concurrent_deliveries_record_once(state: MemoryState) -> None:
    log = make_log(state)
    outcomes = await asyncio.gather(*(record(log, "same") for _ in range(10)))
    assert outcomes.count(True) == 1
    assert len(await log.recent(10)) == 1


class InterleavingState(MemoryState):
    """Yields to other tasks between a read and the write that follows it, as the
    real sidecar does, and counts writes to a recent shard refused for a stale version."""

    shard_conflicts: int = 0

    async def get(self, key: str) -> Versioned | None:
        found = await super().get(key)
        await asyncio.sleep(0)
        return found

    async def save(self, key: str, data: bytes, **kwargs: Any) -> None:
        try:
            await super().save(key, data, **kwargs)
        except EtagMismatch:
            self.shard_conflicts += key.startswith("notifications:recent:")
            raise


async def test_concurrent_deliveries_of_one_replica_do_not_collide_on_a_shard() -> None:
    state = InterleavingState()
    log = make_log(state, capacity=1000)
    outcomes = await asyncio.gather(*(record(log, f"e{i}") for i in range(64)))
    assert all(outcomes)
    assert state.shard_conflicts == 0
    assert len(await log.recent(100)) == 64


class CountingCalls(InterleavingState):
    """Counts reads and writes per kind of key."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    @staticmethod
    def _kind(key: str) -> str:
        return "shard" if key.startswith("notifications:recent:") else "claim"

    async def get(self, key: str) -> Versioned | None:
        self.calls[f"get {self._kind(key)}"] += 1
        return await super().get(key)

    async def save(self, key: str, data: bytes, **kwargs: Any) -> None:
        self.calls[f"save {self._kind(key)}"] += 1
        await super().save(key, data, **kwargs)


async def test_concurrent_deliveries_list_their_entries_in_shared_writes() -> None:
    """Each delivery used to read and rewrite its shard on its own: under load, one
    read and one write of a whole shard per event."""
    state = CountingCalls()
    log = make_log(state, capacity=1000)
    outcomes = await asyncio.gather(*(record(log, f"e{i}") for i in range(64)))
    assert all(outcomes)
    assert state.calls["save shard"] <= 2 * RECENT_SHARDS
    assert sorted(n.event_id for n in await log.recent(100)) == sorted(f"e{i}" for i in range(64))


async def test_a_batch_that_fails_fails_every_delivery_in_it() -> None:
    state = CountingCalls()
    log = make_log(state, capacity=1000)
    original = state.save

    async def shard_down(key: str, data: bytes, **kwargs: Any) -> None:
        if key.startswith("notifications:recent:"):
            raise InfrastructureUnavailable("down (fake)")
        await original(key, data, **kwargs)

    state.save = shard_down  # type: ignore[method-assign]
    outcomes = await asyncio.gather(
        *(record(log, f"e{i}") for i in range(16)), return_exceptions=True
    )
    assert all(isinstance(o, InfrastructureUnavailable) for o in outcomes)
    state.save = original  # type: ignore[method-assign]
    # Nothing was logged or marked: each redelivery records its event.
    assert all(await asyncio.gather(*(record(log, f"e{i}") for i in range(16))))


async def test_marking_a_claim_logged_does_not_read_it_back_on_a_counting_store() -> None:
    state = CountingCalls()
    log = make_log(state)
    assert await record(log, "e1") is True
    assert state.calls["get claim"] == 0
    assert state.calls["save claim"] == 2  # the claim, then the claim marked logged
    assert await record(log, "e1") is False  # marked: a duplicate


async def test_a_claim_taken_over_meanwhile_is_not_marked_by_the_first_attempt() -> None:
    state = CountingCalls()
    log = make_log(state)
    original = state.save
    claim = claim_key(NotificationKind.NOTIFY, "e1")

    async def taken_over_before_the_mark(key: str, data: bytes, **kwargs: Any) -> None:
        if key == claim and kwargs.get("etag") is not None:
            # Another attempt took the claim over (a write of its own) just before.
            stored = state.items[key]
            await original(key, stored.data, etag=stored.etag)
        await original(key, data, **kwargs)

    state.save = taken_over_before_the_mark  # type: ignore[method-assign]
    assert await record(log, "e1") is True
    state.save = original  # type: ignore[method-assign]
    assert Claim.model_validate_json(state.items[claim].data).logged is False


@dataclass
class LosesAnswers(MemoryState):
    """Commits a write to a recent shard, then loses its answer (the sidecar call timed
    out, or the process died before it heard back): the write stands, the caller sees
    an outage."""

    lose_next: bool = False

    async def save(self, key: str, data: bytes, **kwargs: Any) -> None:
        await super().save(key, data, **kwargs)
        if self.lose_next and key.startswith("notifications:recent:"):
            self.lose_next = False
            raise InfrastructureUnavailable("answer lost (fake)")


def notify_lines(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for r in caplog.records if r.name == "notifications")


async def test_a_delivery_whose_listing_answer_was_lost_is_logged_by_the_redelivery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The entry was committed but the delivery never logged: the redelivery used to
    find the entry and call it a duplicate, so the line was never written."""
    state = LosesAnswers(lose_next=True)
    log = make_log(state)
    caplog.set_level(logging.INFO, logger="notifications")
    with pytest.raises(InfrastructureUnavailable):
        await record(log, "e1")
    assert notify_lines(caplog) == 0
    assert await record(log, "e1") is True
    assert notify_lines(caplog) == 1
    assert [n.event_id for n in await log.recent(10)] == ["e1"]
    assert await record(log, "e1") is False
    assert notify_lines(caplog) == 1


async def test_a_crash_after_the_claim_is_repaired_by_the_redelivery(state: MemoryState) -> None:
    log = make_log(state)
    state.down = False
    # As if the first delivery had claimed the event and died before listing it.
    claim = Claim(
        notification=Notification(
            event_id="e1", kind=NotificationKind.NOTIFY, event_type="task.completed",
            received_at=datetime(2026, 11, 28, 11, tzinfo=UTC), message="NOTIFY task.completed",
        ),
        taken_at=datetime(2026, 11, 28, 11, tzinfo=UTC),
    )  # fmt: skip
    await state.save(
        claim_key(NotificationKind.NOTIFY, "e1"), claim.model_dump_json().encode(), etag=None
    )
    assert await record(log, "e1") is True
    assert [n.event_id for n in await log.recent(10)] == ["e1"]
    assert await record(log, "e1") is False


async def test_a_redelivery_while_another_attempt_may_still_finish_asks_to_wait(
    state: MemoryState,
) -> None:
    log = make_log(state)
    now = log_clock(log).now + timedelta(seconds=1)
    claim = Claim(
        notification=Notification(
            event_id="e1", kind=NotificationKind.NOTIFY, event_type="task.completed",
            received_at=now, message="NOTIFY task.completed",
        ),
        taken_at=now,
    )  # fmt: skip
    await state.save(
        claim_key(NotificationKind.NOTIFY, "e1"), claim.model_dump_json().encode(), etag=None
    )
    with pytest.raises(DeliveryInProgress):
        await record(log, "e1")
    assert await log.recent(10) == []


async def test_claims_stored_before_the_claim_record_read_as_logged(state: MemoryState) -> None:
    log = make_log(state)
    legacy = Notification(
        event_id="e1", kind=NotificationKind.NOTIFY, event_type="task.completed",
        received_at=datetime(2026, 11, 28, 11, tzinfo=UTC), message="NOTIFY task.completed",
    )  # fmt: skip
    await state.save(
        claim_key(NotificationKind.NOTIFY, "e1"), legacy.model_dump_json().encode(), etag=None
    )
    assert await record(log, "e1") is False
    assert [n.event_id for n in await log.recent(10)] == ["e1"]


async def test_an_evicted_event_stays_a_duplicate(state: MemoryState) -> None:
    # One entry per shard: the events that share e0's shard push it out.
    log = make_log(state, capacity=RECENT_SHARDS)
    shard = recent_shard_key(NotificationKind.NOTIFY, "e0")
    same_shard = [
        f"e{i}"
        for i in range(1, 200)
        if recent_shard_key(NotificationKind.NOTIFY, f"e{i}") == shard
    ][:2]
    for event_id in ["e0", *same_shard]:
        await record(log, event_id)
    assert same_shard[-1] in [n.event_id for n in await log.recent(10)]
    assert "e0" not in [n.event_id for n in await log.recent(10)]
    assert await record(log, "e0") is False
    assert "e0" not in [n.event_id for n in await log.recent(10)]


async def test_recent_is_newest_first_and_limited(state: MemoryState) -> None:
    log = make_log(state)
    for i in range(5):
        await record(log, f"e{i}")
    assert [n.event_id for n in await log.recent(2)] == ["e4", "e3"]
