"""An in-memory state port for notification-service's unit tests."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from uuid import uuid4

from notification_service.ports import EtagMismatch, InfrastructureUnavailable, Versioned
from notification_service.runtime import Ports
from notification_service.settings import Settings
from task_contracts import EventType, TaskEvent, TaskStatus

API_KEY = "test-key"
# The app token the unit tests' sidecar presents (Settings.app_api_token).
SIDECAR_TOKEN = "sidecar-token"


def task_event(**overrides: object) -> dict[str, object]:
    """A task.completed event as JSON, with fields replaced as given."""
    base = TaskEvent(
        event_type=EventType.COMPLETED,
        task_id=uuid4(),
        title="Write the spec",
        status=TaskStatus.COMPLETED,
        priority=2,
    ).model_dump(mode="json")
    return {**base, **overrides}


@dataclass
class MemorySecrets:
    values: dict[str, str] = field(default_factory=lambda: {"task-api-key": API_KEY})
    # Calls that fail as if the sidecar's secret store were still starting.
    unavailable_calls: int = 0

    async def get_secret(self, name: str) -> str:
        if self.unavailable_calls:
            self.unavailable_calls -= 1
            raise InfrastructureUnavailable("secret store not loaded yet (fake)")
        return self.values[name]


@dataclass
class MemoryState:
    """Keys with integer versions, like state.redis. Every read yields to other tasks
    before it returns, as a call to the real sidecar does, so that concurrent
    deliveries interleave between their read and their write."""

    items: dict[str, Versioned] = field(default_factory=dict)
    etags_count_writes: bool = True
    down: bool = False
    secrets: MemorySecrets = field(default_factory=MemorySecrets)

    async def get(self, key: str) -> Versioned | None:
        if self.down:
            raise InfrastructureUnavailable("down (fake)")
        found = self.items.get(key)
        await asyncio.sleep(0)
        return found

    async def get_many(self, keys: Sequence[str]) -> Mapping[str, Versioned]:
        if self.down:
            raise InfrastructureUnavailable("down (fake)")
        found = {k: self.items[k] for k in keys if k in self.items}
        await asyncio.sleep(0)
        return found

    async def save(
        self,
        key: str,
        data: bytes,
        *,
        etag: str | None,
        first_write: bool = False,
        ttl_seconds: int | None = None,
    ) -> None:
        if self.down:
            raise InfrastructureUnavailable("down (fake)")
        current = self.items.get(key)
        if etag is not None and (current is None or current.etag != etag):
            raise EtagMismatch(key)
        if etag is None and first_write and current is not None:
            raise EtagMismatch(key)
        self.items[key] = Versioned(data, str(int(current.etag) + 1 if current else 1))

    async def ping(self) -> None:
        if self.down:
            raise InfrastructureUnavailable("down (fake)")

    @contextlib.asynccontextmanager
    async def connect(self, _: Settings) -> AsyncIterator[Ports]:
        yield Ports(state=self, secrets=self.secrets)
