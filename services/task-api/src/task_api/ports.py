"""The small interfaces task-api needs from its infrastructure.

`dapr_adapters` implements them on the Dapr sidecar; unit tests use in-memory fakes.
Nothing here knows about gRPC, Redis or HTTP.
"""

from collections.abc import Mapping, Sequence
from typing import Protocol

from dapr_service_kit.state_store import EtagMismatch, InfrastructureUnavailable, Versioned
from task_contracts import TaskEvent

__all__ = [
    "EtagMismatch",
    "InfrastructureUnavailable",
    "NotificationClient",
    "SecretStore",
    "StateStore",
    "Versioned",
]


class StateStore(Protocol):
    # Whether a write turns ETag n into n + 1 (state.redis counts versions), so that a
    # writer knows the new ETag without reading the key again.
    etags_count_writes: bool

    async def get(self, key: str) -> Versioned | None: ...

    async def get_many(self, keys: Sequence[str]) -> Mapping[str, Versioned]:
        """The keys that exist, with their values; missing keys are left out."""
        ...

    async def save(
        self,
        key: str,
        data: bytes,
        *,
        etag: str | None,
        first_write: bool = False,
        ttl_seconds: int | None = None,
    ) -> None:
        """Write `data`. With `etag`, only over that version; with `first_write` and no
        etag, only if the key does not exist. Raises EtagMismatch otherwise."""
        ...

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
    ) -> None:
        """Write `data` and publish `event` if, and only if, the write commits. With
        `etag`, only over that version; without, only if the key is absent where the
        store honours first-write in a transaction (state.redis does not: there the
        caller must be the key's only writer)."""
        ...

    async def ping(self) -> None:
        """Raises InfrastructureUnavailable unless the sidecar and the store answer."""
        ...


class SecretStore(Protocol):
    async def get_secret(self, name: str) -> str: ...


class NotificationClient(Protocol):
    async def notify(self, event: TaskEvent) -> None:
        """Deliver `event` to notification-service. Raises InfrastructureUnavailable."""
        ...

    async def event_lag_seconds(self) -> float:
        """How far the events notification-service handles trail their writes.
        Raises InfrastructureUnavailable."""
        ...
