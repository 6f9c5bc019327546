"""The state port on the Dapr sidecar, through the process's one async Dapr client.
The only module of notification-service that knows gRPC."""

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence

import grpc
from dapr.aio.clients import DaprClient
from dapr.aio.clients.health import DaprHealth as AsyncDaprHealth
from dapr.clients.exceptions import DaprInternalError
from dapr.clients.grpc._state import Concurrency, StateOptions
from dapr.conf import settings as dapr_settings

from dapr_service_kit.secrets import DaprSecretStore
from dapr_service_kit.state_errors import describe, is_version_conflict
from notification_service.ports import EtagMismatch, InfrastructureUnavailable, Versioned
from notification_service.runtime import Ports
from notification_service.settings import Settings

_READINESS_PROBE_KEY = "readiness-probe"


class DaprStateStore:
    def __init__(self, client: DaprClient, store_name: str) -> None:
        self._client = client
        self._store = store_name

    async def get(self, key: str) -> Versioned | None:
        try:
            response = await self._client.get_state(self._store, key)
        except grpc.RpcError as error:
            raise InfrastructureUnavailable(describe(error)) from error
        return Versioned(response.data, response.etag) if response.data else None

    async def get_many(self, keys: Sequence[str]) -> Mapping[str, Versioned]:
        if not keys:
            return {}
        try:
            response = await self._client.get_bulk_state(self._store, list(keys), parallelism=8)
        except grpc.RpcError as error:
            raise InfrastructureUnavailable(describe(error)) from error
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
        # Never last-write: with an etag the write is conditional, and first-write makes
        # an etag-less write fail when the key exists.
        options = StateOptions(concurrency=Concurrency.first_write) if first_write else None
        metadata = {"ttlInSeconds": str(ttl_seconds)} if ttl_seconds else {}
        try:
            await self._client.save_state(
                self._store, key, data, etag=etag, options=options, state_metadata=metadata
            )
        except DaprInternalError as error:
            if not is_version_conflict(error):
                raise InfrastructureUnavailable(describe(error)) from error
            if first_write and etag is None:
                # The key exists: our own write, if only its answer was lost.
                current = await self.get(key)
                if current is not None and current.data == data:
                    return
            raise EtagMismatch(key) from error

    async def ping(self) -> None:
        await self.get(_READINESS_PROBE_KEY)


@contextlib.asynccontextmanager
async def connect_dapr(settings: Settings) -> AsyncIterator[Ports]:
    """One async Dapr client for the whole process, open for the app's lifetime."""
    if getattr(dapr_settings, "DAPR_API_TIMEOUT_SECONDS", None) is None:
        # Without a deadline a call to a hung store would hang its request forever.
        setattr(dapr_settings, "DAPR_API_TIMEOUT_SECONDS", settings.dapr_call_timeout_seconds)  # noqa: B010
    # The client's constructor blocks until the sidecar answers; wait without blocking
    # the event loop first, so that the constructor's own check passes at once.
    await AsyncDaprHealth.wait_for_sidecar()  # type: ignore[no-untyped-call]
    client = DaprClient()
    try:
        yield Ports(
            state=DaprStateStore(client, settings.state_store),
            secrets=DaprSecretStore(
                client, settings.secret_store, unavailable=InfrastructureUnavailable
            ),
        )
    finally:
        await client.close()  # type: ignore[no-untyped-call]
