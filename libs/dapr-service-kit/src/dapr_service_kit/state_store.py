"""Dapr's state API as both services use it: the port their domain code sees and the
adapter on the process's one async client. Its outcomes (a lost version race, an
outage) are in dapr_service_kit.errors.

The services never write unconditionally: with an ETag a write lands only over that
version, and an etag-less one is a first-write, so that no write silently replaces
another writer's.
"""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, Self, TypeVar

import grpc
from dapr.aio.clients import DaprClient
from dapr.clients.exceptions import DaprInternalError
from dapr.clients.grpc._state import Concurrency, StateOptions

from dapr_service_kit.errors import EtagMismatch, InfrastructureUnavailable, sidecar_call
from dapr_service_kit.state_errors import describe, is_version_conflict, status_of

logger = logging.getLogger(__name__)

_READINESS_PROBE_KEY = "readiness-probe"


@dataclass(frozen=True, slots=True)
class Versioned:
    data: bytes
    etag: str


class StateStore(Protocol):
    """The state port of both services (the domain code's view; DaprStateStore
    implements it on the sidecar, unit tests on memory)."""

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


AppStateStore = TypeVar("AppStateStore", bound=StateStore)


# No slots: a frozen dataclass with slots cannot be made through its generic alias
# (Stores[StateStore](...)) on Python 3.11.
@dataclass(frozen=True)
class Stores(Generic[AppStateStore]):
    """The ports every app opens: its state store (the shared port, or an app's own
    extension of it) and its secret store. Dapr's in production, fakes in unit tests."""

    state: AppStateStore
    secrets: SecretStore


def etag_after_write(replaced: str | None) -> str | None:
    """The ETag a key gets from a write over `replaced` (None: the key was absent) on a
    store whose ETags count writes from 1; None if that cannot be told."""
    if replaced is None:
        return "1"
    return str(int(replaced) + 1) if replaced.isdigit() else None


class DaprStateStore:
    def __init__(self, client: DaprClient, store_name: str, *, etags_count_writes: bool) -> None:
        self._client = client
        self._store = store_name
        # state.redis' ETags count a key's writes: a writer knows the ETag its write
        # produced (etag_after_write) without reading the key again.
        self.etags_count_writes = etags_count_writes

    @classmethod
    async def connect(cls, client: DaprClient, store_name: str) -> Self:
        """The adapter, told by the sidecar which kind of store it loaded."""
        return cls(client, store_name, etags_count_writes=await _is_redis_store(client, store_name))

    async def get(self, key: str) -> Versioned | None:
        response = await sidecar_call(self._client.get_state(self._store, key))
        return Versioned(response.data, response.etag) if response.data else None

    async def get_many(self, keys: Sequence[str]) -> Mapping[str, Versioned]:
        if not keys:
            return {}
        response = await sidecar_call(
            self._client.get_bulk_state(self._store, list(keys), parallelism=8)
        )
        found = {}
        for item in response.items:
            if item.error:
                raise InfrastructureUnavailable(item.error)
            if item.data:
                data = item.data if isinstance(item.data, bytes) else item.data.encode()
                found[item.key] = Versioned(data, item.etag)
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
        options = StateOptions(concurrency=Concurrency.first_write) if first_write else None
        metadata = {"ttlInSeconds": str(ttl_seconds)} if ttl_seconds else {}
        try:
            await self._client.save_state(
                self._store, key, data, etag=etag, options=options, state_metadata=metadata
            )
        except (grpc.RpcError, DaprInternalError) as error:
            if not is_version_conflict(error):
                raise InfrastructureUnavailable(describe(error)) from error
            if first_write and etag is None:
                # The key exists: our own write, if only its answer was lost.
                current = await self.get(key)
                if current is not None and current.data == data:
                    return
            raise EtagMismatch(key) from error

    async def delete(self, key: str, *, etag: str | None = None) -> None:
        """Delete the key; with `etag`, only that version (EtagMismatch otherwise)."""
        try:
            await self._client.delete_state(self._store, key, etag=etag)
        except (grpc.RpcError, DaprInternalError) as error:
            if etag is not None and status_of(error) == grpc.StatusCode.ABORTED:
                raise EtagMismatch(key) from error
            raise InfrastructureUnavailable(describe(error)) from error

    async def ping(self) -> None:
        await self.get(_READINESS_PROBE_KEY)


async def _is_redis_store(client: DaprClient, store_name: str) -> bool:
    """Whether the sidecar loaded the store as state.redis, whose ETags count versions.
    When the sidecar cannot say, assume not: that only costs reads."""
    try:
        metadata = await client.get_metadata()
    except (grpc.RpcError, DaprInternalError):
        return False
    found = {c.name: c.type for c in metadata.registered_components}
    logger.info("state store %r is %s", store_name, found.get(store_name, "not loaded"))
    return found.get(store_name) == "state.redis"
