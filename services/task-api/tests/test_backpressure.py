"""Writes slow down while notifications trail them by more than the target, and only
then: reads always go through, and an unreachable notification-service holds nothing
back."""

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
    # Refused at the door: not even a body the route would refuse is read.
    assert behind.post("/tasks", content=b"not json").status_code == 503
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
