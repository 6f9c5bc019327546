"""In-memory stand-ins for task-api's ports, for unit tests only."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from task_api.ports import EtagMismatch, InfrastructureUnavailable, Versioned
from task_api.runtime import Ports
from task_api.settings import Settings
from task_contracts import TaskEvent


class Clock:
    """Each reading is one second after the last: creation order is unambiguous."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@dataclass
class MemoryState:
    """Keys with integer versions, like state.redis: a write must name the current
    version, or (first-write) find the key absent. A key written with a TTL is gone once
    `advance` has moved the fake time past it; like Redis, a key written again starts
    from version 1.

    Like the real sidecar, every read yields to other tasks before it returns, so that
    racing writers interleave between their read and their write. Like Dapr's
    transactions on Redis (MULTI/EXEC, no rollback), a save_with_event whose ETag check
    fails leaves the value alone but still writes the outbox's commit marker: its event
    is published all the same."""

    items: dict[str, Versioned] = field(default_factory=dict)
    etags_count_writes: bool = True
    published: list[TaskEvent] = field(default_factory=list)
    ttls: dict[str, int] = field(default_factory=dict)
    down: bool = False
    now: float = 0.0
    expires: dict[str, float] = field(default_factory=dict)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for key, at in list(self.expires.items()):
            if at <= self.now:
                self.items.pop(key, None)
                del self.expires[key]

    def _check_up(self) -> None:
        if self.down:
            raise InfrastructureUnavailable("state store is down (fake)")

    async def get(self, key: str) -> Versioned | None:
        self._check_up()
        found = self.items.get(key)
        await asyncio.sleep(0)
        return found

    async def get_many(self, keys: Sequence[str]) -> Mapping[str, Versioned]:
        self._check_up()
        found = {k: self.items[k] for k in keys if k in self.items}
        await asyncio.sleep(0)
        return found

    def _expire_in(self, key: str, ttl_seconds: int | None) -> None:
        # Without a TTL a write keeps the key's old one, as state.redis' HSET does.
        if ttl_seconds:
            self.ttls[key] = ttl_seconds
            self.expires[key] = self.now + ttl_seconds

    def _write(self, key: str, data: bytes, etag: str | None, first_write: bool) -> None:
        current = self.items.get(key)
        if etag is not None and (current is None or current.etag != etag):
            raise EtagMismatch(key)
        if etag is None and first_write and current is not None:
            raise EtagMismatch(key)
        version = int(current.etag) + 1 if current else 1
        self.items[key] = Versioned(data, str(version))

    async def save(
        self,
        key: str,
        data: bytes,
        *,
        etag: str | None,
        first_write: bool = False,
        ttl_seconds: int | None = None,
    ) -> None:
        self._check_up()
        self._write(key, data, etag, first_write)
        self._expire_in(key, ttl_seconds)

    async def delete(self, key: str, *, etag: str | None = None) -> None:
        self._check_up()
        current = self.items.get(key)
        if etag is not None and (current is None or current.etag != etag):
            raise EtagMismatch(key)
        self.items.pop(key, None)
        self.expires.pop(key, None)

    async def save_with_event(
        self,
        key: str,
        data: bytes,
        *,
        etag: str | None,
        event: TaskEvent,
        ttl_seconds: int | None = None,
    ) -> None:
        self._check_up()
        try:
            self._write(key, data, etag, first_write=False)
        finally:
            # The commit marker runs whether or not the upsert's ETag check passed.
            self.published.append(event)
        self._expire_in(key, ttl_seconds)

    async def ping(self) -> None:
        self._check_up()


@dataclass
class MemorySecrets:
    values: dict[str, str] = field(default_factory=dict)

    async def get_secret(self, name: str) -> str:
        return self.values[name]


@dataclass
class RecordingNotifications:
    sent: list[TaskEvent] = field(default_factory=list)
    failing: bool = False
    lag_seconds: float = 0.0

    async def notify(self, event: TaskEvent) -> None:
        if self.failing:
            raise InfrastructureUnavailable("notification-service is down (fake)")
        self.sent.append(event)

    async def event_lag_seconds(self) -> float:
        if self.failing:
            raise InfrastructureUnavailable("notification-service is down (fake)")
        return self.lag_seconds


@dataclass
class FakePorts:
    state: MemoryState = field(default_factory=MemoryState)
    secrets: MemorySecrets = field(
        default_factory=lambda: MemorySecrets(
            {"task-api-key": "test-key", "task-api-cursor-key": "test-cursor-key"}
        )
    )
    notifications: RecordingNotifications = field(default_factory=RecordingNotifications)

    @contextlib.asynccontextmanager
    async def connect(self, _: Settings) -> AsyncIterator[Ports]:
        yield Ports(state=self.state, secrets=self.secrets, notifications=self.notifications)
