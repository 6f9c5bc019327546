"""The state access notification-service needs; `dapr_adapters` implements it on the
sidecar, unit tests on memory."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


class InfrastructureUnavailable(Exception):
    """The sidecar or the store behind it did not answer: the caller may retry later."""


class EtagMismatch(Exception):
    """A conditional write lost: the stored version is not the one the write expected."""


@dataclass(frozen=True, slots=True)
class Versioned:
    data: bytes
    etag: str


class StateStore(Protocol):
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
