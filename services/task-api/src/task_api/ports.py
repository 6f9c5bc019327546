"""The small interfaces task-api needs from its infrastructure.

`dapr_adapters` implements them on the Dapr sidecar; unit tests use in-memory fakes.
Nothing here knows about gRPC, Redis or HTTP.
"""

from dataclasses import dataclass
from typing import Protocol

from dapr_service_kit import state_store
from dapr_service_kit.errors import EtagMismatch, InfrastructureUnavailable
from dapr_service_kit.state_store import SecretStore, Versioned
from task_contracts import TaskEvent

__all__ = [
    "EtagMismatch",
    "InfrastructureUnavailable",
    "KeyVersion",
    "NotificationClient",
    "SecretStore",
    "StateStore",
    "Versioned",
]


@dataclass(frozen=True, slots=True)
class KeyVersion:
    """One version of a key: what a transaction deletes only if it is still that one."""

    key: str
    etag: str


class StateStore(state_store.StateStore, Protocol):
    """The shared state port, plus deletes and writes that publish an event."""

    async def delete(self, key: str, *, etag: str | None = None) -> None:
        """Delete the key; with `etag`, only that version (EtagMismatch otherwise)."""
        ...

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
        """Write `data` and publish `event` if, and only if, the write commits. With
        `etag`, only over that version; without, only if the key is absent where the
        store honours first-write in a transaction (state.redis does not: there the
        caller must be the key's only writer). With `delete`, the same transaction
        deletes that key at that version (a lease given back with the write)."""
        ...


class NotificationClient(Protocol):
    async def notify(self, event: TaskEvent) -> None:
        """Deliver `event` to notification-service. Raises InfrastructureUnavailable."""
        ...

    async def event_lag_seconds(self) -> float:
        """How far the events notification-service handles trail their writes.
        Raises InfrastructureUnavailable."""
        ...
