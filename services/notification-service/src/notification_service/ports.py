"""The state access notification-service needs; `dapr_adapters` implements it on the
sidecar, unit tests on memory."""

from collections.abc import Mapping, Sequence
from typing import Protocol

from dapr_service_kit.state_store import EtagMismatch, InfrastructureUnavailable, Versioned

__all__ = ["EtagMismatch", "InfrastructureUnavailable", "SecretStore", "StateStore", "Versioned"]


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
        """Write `data`: with `etag` only over that version, with `first_write` and no
        etag only if the key does not exist. Raises EtagMismatch otherwise."""
        ...

    async def ping(self) -> None:
        """Raises InfrastructureUnavailable unless the sidecar and the store answer."""
        ...


class SecretStore(Protocol):
    async def get_secret(self, name: str) -> str:
        """Raises InfrastructureUnavailable while the sidecar or its store is down."""
        ...
