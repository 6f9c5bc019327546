"""In-memory stand-ins for task-api's ports, for unit tests only."""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from dapr_service_kit.testing import MemorySecrets, MemoryStateStore
from task_api.ports import InfrastructureUnavailable, KeyVersion
from task_api.runtime import Ports
from task_api.settings import Settings
from task_contracts import TaskEvent


@dataclass
class MemoryState(MemoryStateStore):
    """The kit's in-memory state store, plus task-api's outbox write. Like Dapr's
    transactions on Redis (MULTI/EXEC, no rollback), a save_with_event whose ETag check
    fails leaves the value alone but still writes the outbox's commit marker: its event
    is published all the same."""

    published: list[TaskEvent] = field(default_factory=list)

    async def save_with_event(
        self,
        key: str,
        data: bytes,
        *,
        etag: str | None,
        event: TaskEvent,
        ttl_seconds: int | None = None,
        delete: KeyVersion | None = None,
    ) -> None:
        self._check_up("save_with_event")
        try:
            self._write(key, data, etag, first_write=False)
            self._expire_in(key, ttl_seconds)
        finally:
            # Every operation runs whether or not another's ETag check passed, and the
            # commit marker with them.
            self.published.append(event)
            if delete is not None:
                self._delete(delete.key, delete.etag)


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
