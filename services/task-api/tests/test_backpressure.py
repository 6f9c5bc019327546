"""Writes slow down while notifications trail them by more than the target, and only
then: reads always go through, and an unreachable notification-service holds nothing
back until the broker's bounded backlog would be at risk."""

import asyncio
import contextlib
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from task_api_fakes import FakePorts

from task_api.backpressure import (
    INITIAL_CONCURRENT_WRITES,
    MAX_CONCURRENT_WRITES,
    NoSlot,
    WriteLimiter,
)
from task_api.main import create_app
from task_api.settings import Settings
from task_api.write_gate import REFUSAL


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ports() -> FakePorts:
    return FakePorts()


def limiter_on(ports: FakePorts, clock: Clock) -> WriteLimiter:
    return WriteLimiter(
        ports.notifications.event_lag_seconds, target_seconds=1.3, poll_seconds=1, monotonic=clock
    )


async def test_the_limit_shrinks_while_behind_and_grows_back(ports: FakePorts) -> None:
    limiter = limiter_on(ports, Clock())
    ports.notifications.lag_seconds = 4.0
    for _ in range(30):
        await limiter.ask_once()
    assert limiter.limit == 1
    ports.notifications.lag_seconds = 1.0
    await limiter.ask_once()
    assert limiter.limit == 1  # caught up, but nobody used the slot: no reason to grow
    async with limiter.slot(wait_seconds=0):
        for _ in range(3):
            await limiter.ask_once()  # in use and the lag fine: one more, once used
    assert limiter.limit == 2


async def test_the_limit_grows_only_as_far_as_writes_use_it(ports: FakePorts) -> None:
    """A limit grown while idle would let the first second of a burst run far ahead
    of the events (their lag answers a second late)."""
    limiter = limiter_on(ports, Clock())
    ports.notifications.lag_seconds = 1.0
    for _ in range(50):
        await limiter.ask_once()
    assert limiter.limit == INITIAL_CONCURRENT_WRITES
    release = asyncio.Event()

    async def write() -> None:
        async with limiter.slot(wait_seconds=30):
            await release.wait()

    writes = [asyncio.create_task(write()) for _ in range(MAX_CONCURRENT_WRITES + 10)]
    for _ in range(100):
        await asyncio.sleep(0)
        await limiter.ask_once()
    assert limiter.limit == MAX_CONCURRENT_WRITES
    release.set()
    await asyncio.gather(*writes)


async def test_writes_beyond_the_limit_wait_for_a_slot_or_are_refused(ports: FakePorts) -> None:
    limiter = limiter_on(ports, Clock())
    ports.notifications.lag_seconds = 4.0
    for _ in range(30):
        await limiter.ask_once()
    release = asyncio.Event()

    async def write() -> None:
        async with limiter.slot(wait_seconds=5):
            await release.wait()

    first = asyncio.create_task(write())
    await asyncio.sleep(0)
    assert limiter.in_flight == 1
    with pytest.raises(NoSlot):
        async with limiter.slot(wait_seconds=0.01):
            pass
    second = asyncio.create_task(write())  # waits for the first one's slot
    await asyncio.sleep(0.01)
    assert limiter.in_flight == 1
    release.set()
    await asyncio.gather(first, second)
    assert limiter.in_flight == 0


class Writes:
    """Fake writes that count how many run at once themselves (not the limiter's own
    count), and yield to the event loop between taking their slot and counting in, so
    that whatever the limiter lets in meanwhile shows."""

    def __init__(self, limiter: WriteLimiter) -> None:
        self.limiter = limiter
        self.running = 0
        self.peak = 0
        self.refused = 0

    async def write(self, done: asyncio.Event) -> None:
        try:
            async with self.limiter.slot(wait_seconds=5):
                await asyncio.sleep(0)
                self.running += 1
                self.peak = max(self.peak, self.running)
                await done.wait()
                self.running -= 1
        except NoSlot:
            self.refused += 1


async def test_no_more_writes_run_at_once_than_the_limit(ports: FakePorts) -> None:
    """Slots freed one after another, before the writers they woke have run, and new
    writes arriving in between: neither a second release nor a newcomer may take a
    slot already handed to a waiting writer (measured before: limit 3, 6 running)."""
    limiter = limiter_on(ports, Clock())
    limiter.limit = 3
    writes = Writes(limiter)
    first, later = asyncio.Event(), asyncio.Event()
    holders = [asyncio.create_task(writes.write(first)) for _ in range(3)]
    waiters = [asyncio.create_task(writes.write(later)) for _ in range(3)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert (writes.running, limiter.in_flight, len(limiter._waiting)) == (3, 3, 3)
    # The three holders end in one turn of the loop; the newcomers' first step comes
    # before the woken waiters'.
    first.set()
    newcomers = [asyncio.create_task(writes.write(later)) for _ in range(3)]
    for _ in range(10):
        await asyncio.sleep(0)
    assert writes.running == 3
    assert limiter.in_flight == 3
    later.set()
    async with asyncio.timeout(5):
        await asyncio.gather(*holders, *waiters, *newcomers)
    assert (writes.peak, writes.refused, limiter.in_flight) == (3, 0, 0)


async def test_waiters_get_their_slots_first_come_first_served(ports: FakePorts) -> None:
    limiter = limiter_on(ports, Clock())
    limiter.limit = 1
    order: list[int] = []
    release = asyncio.Event()

    async def write(n: int) -> None:
        async with limiter.slot(wait_seconds=5):
            order.append(n)
            await release.wait()

    tasks = []
    for n in range(4):
        tasks.append(asyncio.create_task(write(n)))
        await asyncio.sleep(0)
    release.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3]


async def test_a_slot_handed_to_a_waiter_that_gave_up_is_not_lost(ports: FakePorts) -> None:
    """A waiter whose wait ends (its client went away) in the same turn as it is handed
    a slot gives the slot back, or uses it and then gives it back: either way none is
    lost and none is taken twice."""
    limiter = limiter_on(ports, Clock())
    limiter.limit = 1
    release, waiter_done = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(Writes(limiter).write(release))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(Writes(limiter).write(waiter_done))
    await asyncio.sleep(0)
    assert (limiter.in_flight, len(limiter._waiting)) == (1, 1)
    release.set()
    await asyncio.sleep(0)  # the holder leaves and hands its slot on
    waiter.cancel()  # before the waiter has run
    waiter_done.set()
    async with asyncio.timeout(5):
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
        await holder
    assert (limiter.in_flight, len(limiter._waiting)) == (0, 0)
    async with limiter.slot(wait_seconds=0):
        assert limiter.in_flight == 1


async def test_an_unreachable_notification_service_holds_nothing_back(ports: FakePorts) -> None:
    limiter = limiter_on(ports, Clock())
    ports.notifications.lag_seconds = 4.0
    for _ in range(30):
        await limiter.ask_once()
    ports.notifications.failing = True
    assert await limiter.ask_once() is False
    async with contextlib.AsyncExitStack() as writes:
        for _ in range(MAX_CONCURRENT_WRITES):
            await writes.enter_async_context(limiter.slot(wait_seconds=0))
        assert limiter.in_flight == MAX_CONCURRENT_WRITES  # the events wait durably
    ports.notifications.failing = False
    assert await limiter.ask_once() is True
    assert limiter.limit == 1  # back to what the lag allows


async def test_writes_nobody_confirms_stop_at_what_the_stream_keeps(ports: FakePorts) -> None:
    """While notification-service does not answer, a replica admits a bounded number of
    writes, then refuses until it answers again: the broker trims its oldest entries, and
    an event must not be trimmed away unread."""
    limiter = WriteLimiter(
        ports.notifications.event_lag_seconds,
        target_seconds=1.3,
        poll_seconds=1,
        monotonic=Clock(),
        unconfirmed_writes=5,
    )
    ports.notifications.failing = True
    assert await limiter.ask_once() is False
    for _ in range(5):
        async with limiter.slot(wait_seconds=0):
            pass
    with pytest.raises(NoSlot):
        async with limiter.slot(wait_seconds=0):
            pass
    ports.notifications.failing = False
    assert await limiter.ask_once() is True
    async with limiter.slot(wait_seconds=0):
        pass


async def test_the_watcher_asks_only_while_writes_come(ports: FakePorts) -> None:
    asked = 0

    async def lag() -> float:
        nonlocal asked
        asked += 1
        return 0.5

    limiter = WriteLimiter(lag, target_seconds=1.3, poll_seconds=0.001)
    watcher = asyncio.create_task(limiter.watch())
    await asyncio.sleep(0.05)
    assert asked == 0  # no write yet: not a single question
    async with limiter.slot(wait_seconds=0):
        pass
    await asyncio.sleep(0.05)
    assert asked > 0
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher


@pytest.fixture
def behind(ports: FakePorts) -> Iterator[TestClient]:
    """task-api whose watcher keeps hearing that notifications trail by 5 s."""
    ports.notifications.lag_seconds = 5.0
    settings = Settings(event_lag_poll_seconds=0.01)
    with TestClient(create_app(settings, connect=ports.connect)) as client:
        client.headers["X-API-Key"] = "test-key"
        yield client


def test_a_write_without_a_slot_is_refused_with_retry_after(
    behind: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("task_api.write_gate.HOLD_SECONDS", 0.05)
    limiter = behind.app.state.runtime.write_limiter  # type: ignore[attr-defined]
    # A write wakes the watcher (it asks only while writes come); it runs in the app's
    # event loop: poll until it has cut the limit to one.
    assert behind.post("/tasks", json={"title": "First"}).status_code == 201
    for _ in range(500):
        if limiter.limit == 1:
            break
        behind.get("/tasks")
    assert limiter.limit == 1
    limiter.in_flight += 1  # a write holds the one slot
    refused = behind.post("/tasks", json={"title": "Later"})
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert refused.json() == {"detail": REFUSAL}
    # A slot is taken only by a write ready for the store: bad input is told so.
    assert behind.post("/tasks", content=b"not json").status_code == 415
    assert behind.post("/tasks", json={"title": ""}).status_code == 422
    assert behind.get("/tasks").status_code == 200
    limiter.in_flight -= 1
    assert behind.post("/tasks", json={"title": "Now"}).status_code == 201


def test_back_pressure_can_be_turned_off(ports: FakePorts) -> None:
    ports.notifications.lag_seconds = 60.0
    settings = Settings(event_lag_target_seconds=0, event_lag_poll_seconds=0.01)
    with TestClient(create_app(settings, connect=ports.connect)) as client:
        client.headers["X-API-Key"] = "test-key"
        assert client.app.state.runtime.write_limiter is None  # type: ignore[attr-defined]
        for _ in range(20):
            assert client.post("/tasks", json={"title": "Always"}).status_code == 201
