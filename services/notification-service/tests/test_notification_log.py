"""Exactly-once recording on an in-memory store."""

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from dapr_service_kit.testing import Clock, MemoryStateStore
from notification_service.models import Notification, NotificationKind
from notification_service.notification_log import (
    RECENT_SHARDS,
    Claim,
    DeliveryInProgress,
    HoldExpired,
    NotificationLog,
    claim_key,
    describe,
    recent_shard_key,
)
from notification_service.ports import InfrastructureUnavailable, Versioned
from notification_service.timing import AttemptTiming

# Unhurried for the tests that are not about time: a 3 s hold, take-over after 4 s.
UNHURRIED = AttemptTiming(call_seconds=1.0)
# For the tests about holds and take-overs: a 0.3 s hold, take-over after 0.4 s.
QUICK = AttemptTiming(call_seconds=0.1, cancel_margin_seconds=0.1, poll_seconds=0.02)


def make_log(
    state: MemoryStateStore,
    capacity: int = 100,
    *,
    timing: AttemptTiming = UNHURRIED,
    clock: Callable[[], datetime] | None = None,
) -> NotificationLog:
    return NotificationLog(
        state, capacity=capacity, dedupe_ttl_seconds=60, clock=clock or Clock(), timing=timing
    )


def log_clock(log: NotificationLog) -> Clock:
    clock = log._clock
    assert isinstance(clock, Clock)
    return clock


async def record(
    log: NotificationLog,
    event_id: str,
    kind: NotificationKind = NotificationKind.NOTIFY,
    *,
    wait_seconds: float | None = None,
) -> bool:
    return await log.record(
        kind,
        event_id=event_id,
        event_type="task.completed",
        task_id=uuid4(),
        title="T",
        priority=2,
        wait_seconds=wait_seconds,
    )


def notify_lines(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for r in caplog.records if r.name == "notifications")


def test_bidi_overrides_and_line_separators_are_escaped() -> None:
    line = describe(NotificationKind.NOTIFY, "task.created", None, "a\u202eb\u2028c", None)
    assert line == 'NOTIFY task.created "a\\u202eb\\u2028c"'


def test_the_log_line_quotes_the_title() -> None:
    task_id = uuid4()
    line = describe(NotificationKind.NOTIFY, "task.completed", task_id, 'Say "hi"\nFAKE', 2)
    assert line == f'NOTIFY task.completed task={task_id} "Say \\"hi\\"\\nFAKE" (priority 2)'
    assert "\n" not in line


async def test_a_repeated_event_is_recorded_and_logged_once(
    state: MemoryStateStore, caplog: pytest.LogCaptureFixture
) -> None:
    log = make_log(state)
    caplog.set_level(logging.INFO, logger="notifications")
    assert await record(log, "e1") is True
    assert await record(log, "e1") is False
    assert [n.event_id for n in await log.recent(10)] == ["e1"]
    assert len([r for r in caplog.records if r.name == "notifications"]) == 1


async def test_the_same_event_may_be_both_activity_and_notify(state: MemoryStateStore) -> None:
    log = make_log(state)
    assert await record(log, "e1", NotificationKind.ACTIVITY)
    assert await record(log, "e1", NotificationKind.NOTIFY)
    assert len(await log.recent(10)) == 2


async def test_concurrent_deliveries_record_once_and_answer_only_after_the_line(
    state: MemoryStateStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The deliveries that arrive while the first records used to be answered
    "duplicate" at once, before anything was logged."""
    log = make_log(state)
    caplog.set_level(logging.INFO, logger="notifications")

    async def lines_when_answered() -> tuple[bool, int]:
        recorded = await record(log, "same")
        return recorded, notify_lines(caplog)

    outcomes = await asyncio.gather(*(lines_when_answered() for _ in range(10)))
    assert [recorded for recorded, _ in outcomes].count(True) == 1
    assert {lines for _, lines in outcomes} == {1}
    assert len(await log.recent(10)) == 1


@dataclass
class StallsFirstClaim(MemoryStateStore):
    """The first claim write waits until released, as a write to a stalled store does,
    then fails: the store refused it, or (`stored`) committed it and the answer was
    lost. Every other call goes through."""

    stored: bool = False
    stalled: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def save(self, key: str, data: bytes, **kwargs: Any) -> None:
        if key.startswith("seen:") and not self.stalled.is_set():
            self.stalled.set()
            await self.release.wait()
            if self.stored:
                await super().save(key, data, **kwargs)
            raise InfrastructureUnavailable("deadline exceeded (fake)")
        await super().save(key, data, **kwargs)


@pytest.mark.parametrize("stored", [False, True], ids=["refused", "answer-lost"])
async def test_a_delivery_during_an_attempt_that_fails_is_not_answered_success(
    stored: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """notify timed out at task-api's sidecar while the store stalled; its retry was
    answered "duplicate" at once, then the first attempt failed: no line, ever."""
    state = StallsFirstClaim(stored=stored)
    log = make_log(state)
    caplog.set_level(logging.INFO, logger="notifications")
    first = asyncio.create_task(record(log, "e1"))
    await state.stalled.wait()
    retry = asyncio.create_task(record(log, "e1", wait_seconds=5))
    for _ in range(10):
        await asyncio.sleep(0)
    assert not retry.done()  # it waits for the first attempt's outcome
    state.release.set()
    for delivery in (first, retry):
        with pytest.raises(InfrastructureUnavailable):
            await delivery
    assert notify_lines(caplog) == 0
    # The next retry writes it, at once: the claim (if stored) was this process's own
    # attempt's, which has ended.
    assert await record(log, "e1", wait_seconds=0.5) is True
    assert notify_lines(caplog) == 1
    assert await record(log, "e1") is False
    assert notify_lines(caplog) == 1
    assert Claim.model_validate_json(
        state.items[claim_key(NotificationKind.NOTIFY, "e1")].data
    ).logged


@dataclass
class SlowShards(MemoryStateStore):
    """Writes to a recent shard wait until released (a store that stalls mid-attempt)."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    # Set once an attempt holds its claim and waits at its listing.
    listing: asyncio.Event = field(default_factory=asyncio.Event)

    async def save(self, key: str, data: bytes, **kwargs: Any) -> None:
        if key.startswith("notifications:recent:"):
            self.listing.set()
            await self.release.wait()
        await super().save(key, data, **kwargs)


async def test_a_delivery_that_outwaits_its_budget_asks_again_and_the_line_is_written_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = SlowShards()
    log = make_log(state)
    caplog.set_level(logging.INFO, logger="notifications")
    first = asyncio.create_task(record(log, "e1"))
    await state.listing.wait()
    with pytest.raises(DeliveryInProgress):
        await record(log, "e1", wait_seconds=0.05)
    assert notify_lines(caplog) == 0
    state.release.set()
    assert await first is True
    assert await record(log, "e1", wait_seconds=0.05) is False
    assert notify_lines(caplog) == 1


async def test_concurrent_deliveries_of_one_replica_do_not_collide_on_a_shard() -> None:
    # Every read yields once more: concurrent deliveries interleave between read and write.
    state = MemoryStateStore(read_yields=2)
    log = make_log(state, capacity=1000)
    outcomes = await asyncio.gather(*(record(log, f"e{i}") for i in range(64)))
    assert all(outcomes)
    shard_conflicts = [k for k in state.refused if k.startswith("notifications:recent:")]
    assert shard_conflicts == []
    assert len(await log.recent(100)) == 64


class CountingCalls(MemoryStateStore):
    """Counts reads and writes per kind of key too (in `calls`, beside the counts per
    method). Every read yields once more, so that concurrent deliveries interleave
    between their read and their write."""

    def __init__(self) -> None:
        super().__init__(read_yields=2)

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
class LosesAnswers(MemoryStateStore):
    """Commits a write to a recent shard, then loses its answer (the sidecar call timed
    out, or the process died before it heard back): the write stands, the caller sees
    an outage."""

    lose_next: bool = False

    async def save(self, key: str, data: bytes, **kwargs: Any) -> None:
        await super().save(key, data, **kwargs)
        if self.lose_next and key.startswith("notifications:recent:"):
            self.lose_next = False
            raise InfrastructureUnavailable("answer lost (fake)")


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


async def test_a_crash_after_the_claim_is_repaired_by_the_redelivery(
    state: MemoryStateStore,
) -> None:
    log = make_log(state, timing=QUICK)
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
    state: MemoryStateStore,
) -> None:
    log = make_log(state)
    now = log_clock(log).now + timedelta(seconds=1)
    claim = Claim(
        notification=Notification(
            event_id="e1", kind=NotificationKind.NOTIFY, event_type="task.completed",
            received_at=now, message="NOTIFY task.completed",
        ),
        taken_at=now,
        holder="another replica",
    )  # fmt: skip
    await state.save(
        claim_key(NotificationKind.NOTIFY, "e1"), claim.model_dump_json().encode(), etag=None
    )
    with pytest.raises(DeliveryInProgress):
        await record(log, "e1", wait_seconds=0.3)
    assert await log.recent(10) == []


async def test_claims_stored_before_the_claim_record_read_as_logged(
    state: MemoryStateStore,
) -> None:
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


async def test_an_evicted_event_stays_a_duplicate(state: MemoryStateStore) -> None:
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


async def test_recent_is_newest_first_and_limited(state: MemoryStateStore) -> None:
    log = make_log(state)
    for i in range(5):
        await record(log, f"e{i}")
    assert [n.event_id for n in await log.recent(2)] == ["e4", "e3"]


class WallClock:
    """A replica's wall clock: the shared time plus the replica's own skew."""

    base = datetime(2026, 11, 28, 12, tzinfo=UTC)

    def __init__(self, shared: list[timedelta], skew: timedelta = timedelta(0)) -> None:
        self.shared = shared
        self.skew = skew

    def __call__(self) -> datetime:
        return self.base + self.shared[0] + self.skew


@pytest.mark.parametrize(
    ("skew", "elapsed"),
    [
        (timedelta(0), timedelta(seconds=3)),  # a live attempt slower than the old 2 s
        (timedelta(seconds=2), timedelta(0)),  # the other node's clock 2 s ahead
        (timedelta(hours=1), timedelta(0)),
    ],
    ids=["slow-attempt", "clock-2s-ahead", "clock-1h-ahead"],
)
async def test_a_live_attempt_is_not_taken_over_by_another_replica(
    skew: timedelta, elapsed: timedelta, caplog: pytest.LogCaptureFixture
) -> None:
    """Replica A holds the claim, its listing stalled; replica B gets a redelivery. B
    used to take the claim over once A's `taken_at` looked 2 s old by B's clock, and
    both logged."""
    state = SlowShards()
    shared_time = [timedelta(0)]
    replica_a = make_log(state, clock=WallClock(shared_time))
    # The same keys, through a sidecar of its own that does not stall.
    replica_b = make_log(MemoryStateStore(items=state.items), clock=WallClock(shared_time, skew))
    caplog.set_level(logging.INFO, logger="notifications")
    first = asyncio.create_task(record(replica_a, "e1"))
    await state.listing.wait()
    shared_time[0] += elapsed
    with pytest.raises(DeliveryInProgress):
        await record(replica_b, "e1", wait_seconds=0.2)
    state.release.set()
    assert await first is True
    assert await record(replica_b, "e1", wait_seconds=0.2) is False
    assert notify_lines(caplog) == 1


async def test_an_abandoned_claim_is_taken_over_after_the_longest_hold_whatever_the_clocks(
    state: MemoryStateStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A replica died holding the claim. The one that gets the redelivery takes it over
    once it has watched the claim stay unfinished for longer than a hold, by its own
    monotonic clock: its wall clock an hour behind (the claim looks an hour in the
    future) changes nothing."""
    shared_time = [timedelta(0)]
    claim = Claim(
        notification=Notification(
            event_id="e1", kind=NotificationKind.NOTIFY, event_type="task.completed",
            received_at=WallClock.base, message="NOTIFY task.completed",
        ),
        taken_at=WallClock.base,
        holder="a replica that died",
    )  # fmt: skip
    key = claim_key(NotificationKind.NOTIFY, "e1")
    await state.save(key, claim.model_dump_json().encode(), etag=None)
    survivor = make_log(state, timing=QUICK, clock=WallClock(shared_time, skew=-timedelta(hours=1)))
    caplog.set_level(logging.INFO, logger="notifications")
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await record(survivor, "e1") is True
    assert loop.time() - started >= QUICK.take_over_after_seconds
    assert notify_lines(caplog) == 1
    assert Claim.model_validate_json(state.items[key].data).logged


async def test_watching_starts_again_when_the_claim_changes_hands(
    state: MemoryStateStore,
) -> None:
    """A claim taken over by a third replica is a new attempt, watched from scratch."""
    key = claim_key(NotificationKind.NOTIFY, "e1")
    claim = Claim(
        notification=Notification(
            event_id="e1", kind=NotificationKind.NOTIFY, event_type="task.completed",
            received_at=WallClock.base, message="NOTIFY task.completed",
        ),
        taken_at=WallClock.base,
        holder="first",
    )  # fmt: skip
    await state.save(key, claim.model_dump_json().encode(), etag=None)
    watcher = make_log(state, timing=QUICK)
    watching = asyncio.create_task(record(watcher, "e1", wait_seconds=0.3))
    await asyncio.sleep(QUICK.take_over_after_seconds / 2)  # the fake's "third replica"
    taken = claim.model_copy(update={"holder": "third"})
    await state.save(key, taken.model_dump_json().encode(), etag=state.items[key].etag)
    with pytest.raises(DeliveryInProgress):
        await watching
    assert Claim.model_validate_json(state.items[key].data).holder == "third"


@dataclass
class DelayedShards(MemoryStateStore):
    """Writes to a recent shard take `delay` seconds: a slow store."""

    delay: float = 0.0

    async def save(self, key: str, data: bytes, **kwargs: Any) -> None:
        if key.startswith("notifications:recent:"):
            await asyncio.sleep(self.delay)
        await super().save(key, data, **kwargs)


@pytest.mark.parametrize(
    "delay",
    [
        # Listed after the time to log has passed, within the hold: no line.
        QUICK.log_within_seconds(1) + QUICK.call_seconds / 2,
        # Still listing when the hold ends: cut off.
        QUICK.hold_seconds * 3,
    ],
    ids=["past-log-time", "past-hold"],
)
async def test_an_attempt_too_slow_for_its_hold_writes_no_line_and_the_next_one_here_does(
    delay: float, caplog: pytest.LogCaptureFixture
) -> None:
    """Past its time a holder may already have been taken over elsewhere: it gives up
    without its line. The next attempt in the same process knows that holder has ended
    and takes the claim over at once, without watching it."""
    state = DelayedShards(delay=delay)
    log = make_log(state, timing=QUICK)
    caplog.set_level(logging.INFO, logger="notifications")
    with pytest.raises(HoldExpired):
        await record(log, "e1")
    assert notify_lines(caplog) == 0
    state.delay = 0
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await record(log, "e1", wait_seconds=QUICK.take_over_after_seconds) is True
    assert loop.time() - started < QUICK.take_over_after_seconds
    assert notify_lines(caplog) == 1


@dataclass
class LosesTheMark(MemoryStateStore):
    """The write marking a claim logged fails once (its answer lost, the write not
    done)."""

    failed: bool = False

    async def save(self, key: str, data: bytes, **kwargs: Any) -> None:
        marking = key.startswith("seen:") and b'"logged":true' in data
        if marking and not self.failed:
            self.failed = True
            raise InfrastructureUnavailable("deadline exceeded (fake)")
        await super().save(key, data, **kwargs)


async def test_a_line_logged_but_not_marked_is_marked_by_the_next_attempt_here_not_repeated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = LosesTheMark()
    log = make_log(state)
    caplog.set_level(logging.INFO, logger="notifications")
    with pytest.raises(InfrastructureUnavailable):
        await record(log, "e1")
    assert notify_lines(caplog) == 1
    assert await record(log, "e1", wait_seconds=0.5) is False
    assert notify_lines(caplog) == 1
    key = claim_key(NotificationKind.NOTIFY, "e1")
    assert Claim.model_validate_json(state.items[key].data).logged


def test_a_take_over_waits_longer_than_any_hold_and_a_holder_leaves_time_to_mark() -> None:
    timing = AttemptTiming()
    assert timing.take_over_after_seconds > timing.hold_seconds
    for mark_calls in (1, 2):
        assert 0 < timing.log_within_seconds(mark_calls) <= timing.hold_seconds - mark_calls * 5
    assert timing.watch_seconds > timing.take_over_after_seconds


async def test_the_feed_outlives_the_claims(state: MemoryStateStore) -> None:
    """Claims live for the dedupe TTL, minutes; the recent list keeps what the feed
    shows, line included, until newer notifications push it out."""
    log = make_log(state)
    assert await record(log, "e1")
    [before] = await log.recent(10)
    for key in [k for k in state.items if k.startswith("seen:")]:
        del state.items[key]  # the TTL ran out
    assert await log.recent(10) == [before]
    assert before.message.startswith("NOTIFY task.completed task=")


async def test_a_claim_holds_no_copy_of_the_notification(state: MemoryStateStore) -> None:
    """Every write keeps its claim for the dedupe TTL: it is what Redis holds per write."""
    log = make_log(state)
    assert await record(log, "e1")
    stored = state.items[claim_key(NotificationKind.NOTIFY, "e1")].data
    assert set(json.loads(stored)) == {"taken_at", "holder", "logged"}
    assert len(stored) < 120


async def test_entries_of_the_older_format_are_read_from_their_claims(
    state: MemoryStateStore,
) -> None:
    """Before the recent list carried notifications, an entry named one and its claim
    held it; such an entry whose claim has expired is skipped."""
    log = make_log(state)
    kept, expired = (
        Notification(
            event_id=event_id, kind=NotificationKind.NOTIFY, event_type="task.completed",
            received_at=WallClock.base - timedelta(minutes=1, seconds=n),
            message=f"NOTIFY {event_id}",
        )
        for n, event_id in enumerate(["old-kept", "old-expired"])
    )  # fmt: skip
    for notification in (kept, expired):
        shard = recent_shard_key(notification.kind, notification.event_id)
        entries = json.loads(state.items[shard].data) if shard in state.items else []
        entries.append(
            notification.model_dump(mode="json", include={"kind", "event_id", "received_at"})
        )
        await state.save(
            shard,
            json.dumps(entries).encode(),
            etag=state.items[shard].etag if shard in state.items else None,
        )
    legacy = Claim(notification=kept, taken_at=kept.received_at, logged=True)
    await state.save(
        claim_key(kept.kind, kept.event_id), legacy.model_dump_json().encode(), etag=None
    )
    assert await record(log, "new")
    assert [n.event_id for n in await log.recent(10)] == ["new", "old-kept"]
    assert (await log.recent(10))[1] == kept
