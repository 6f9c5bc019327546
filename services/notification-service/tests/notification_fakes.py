"""In-memory stand-ins for notification-service's ports, for unit tests only: the kit's
(dapr_service_kit.testing), as notification-service needs nothing beyond the shared ports."""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from uuid import uuid4

from dapr_service_kit.testing import MemorySecrets, MemoryStateStore
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
class FakePorts:
    state: MemoryStateStore = field(default_factory=MemoryStateStore)
    secrets: MemorySecrets = field(default_factory=lambda: MemorySecrets({"task-api-key": API_KEY}))

    @contextlib.asynccontextmanager
    async def connect(self, _: Settings) -> AsyncIterator[Ports]:
        yield Ports(state=self.state, secrets=self.secrets)
