"""The ports of `task_api.ports`, implemented on the Dapr sidecar through the one async
Dapr client of the process. This is the only module of task-api that knows gRPC."""

import contextlib
import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import Any, TypeVar

import grpc
from dapr.aio.clients import DaprClient
from dapr.aio.clients.health import DaprHealth as AsyncDaprHealth
from dapr.clients.exceptions import DaprInternalError
from dapr.clients.grpc._state import Concurrency, StateOptions
from dapr.conf import settings as dapr_settings
from dapr.proto import api_v1, common_v1

from dapr_service_kit.secrets import DaprSecretStore
from dapr_service_kit.state_errors import describe, is_version_conflict, status_of
from task_api.ports import EtagMismatch, InfrastructureUnavailable, Versioned
from task_api.runtime import Ports
from task_api.settings import Settings
from task_contracts import NotifyRequest, TaskEvent

T = TypeVar("T")

logger = logging.getLogger(__name__)

# The SDK steers towards gRPC proxying for invocation; its gRPC invoke_method still
# works and, unlike the HTTP path, reuses the process's one channel.
warnings.filterwarnings(
    "ignore", message="invoke_method with protocol gRPC is deprecated", category=DeprecationWarning
)

_READINESS_PROBE_KEY = "readiness-probe"


async def _call(operation: Awaitable[T]) -> T:
    try:
        return await operation
    except (grpc.RpcError, DaprInternalError) as error:
        raise InfrastructureUnavailable(describe(error)) from error


class DaprStateStore:
    def __init__(self, client: DaprClient, store_name: str, *, etags_count_writes: bool) -> None:
        self._client = client
        self._store = store_name
        self.etags_count_writes = etags_count_writes

    async def get(self, key: str) -> Versioned | None:
        response = await _call(self._client.get_state(self._store, key))
        if not response.data:
            return None
        return Versioned(response.data, response.etag)

    async def get_many(self, keys: Sequence[str]) -> Mapping[str, Versioned]:
        if not keys:
            return {}
        response = await _call(self._client.get_bulk_state(self._store, list(keys), parallelism=8))
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

    async def delete(self, key: str, *, etag: str | None = None) -> None:
        try:
            await self._client.delete_state(self._store, key, etag=etag)
        except (grpc.RpcError, DaprInternalError) as error:
            status = status_of(error)
            if etag is not None and status == grpc.StatusCode.ABORTED:
                raise EtagMismatch(key) from error
            raise InfrastructureUnavailable(describe(error)) from error

    async def save_with_event(
        self,
        key: str,
        data: bytes,
        *,
        etag: str | None,
        event: TaskEvent,
        ttl_seconds: int | None = None,
    ) -> None:
        """One state transaction on an outbox-enabled store: Dapr publishes it to the
        outbox topic once the transaction commits.

        The outbox publishes every upsert of the transaction; a second upsert of the same
        key marked `outbox.projection` replaces what is published for it, so the
        subscribers get the TaskEvent while the store keeps the task. The SDK's
        execute_state_transaction drops per-operation metadata, so the request is built
        here on the client's own stub.
        """
        # Copied by the outbox into the CloudEvent envelope: subscriptions route on it.
        task_metadata = {"type": event.event_type.value}
        if ttl_seconds:
            task_metadata["ttlInSeconds"] = str(ttl_seconds)
        upsert = api_v1.TransactionalStateOperation(
            operationType="upsert",
            request=common_v1.StateItem(
                key=key,
                value=data,
                etag=common_v1.Etag(value=etag) if etag is not None else None,
                # Without an ETag, only a first write (stores other than state.redis
                # honour this inside a transaction).
                options=None
                if etag is not None
                else common_v1.StateOptions(
                    concurrency=common_v1.StateOptions.CONCURRENCY_FIRST_WRITE
                ),
                metadata=task_metadata,
            ),
        )
        # Never a JSON content type on the stored value: state.redis would take its
        # RedisJSON path, which plain Redis does not have. The projection is not stored.
        projection = api_v1.TransactionalStateOperation(
            operationType="upsert",
            request=common_v1.StateItem(
                key=key,
                value=event.model_dump_json().encode(),
                metadata={"outbox.projection": "true", "contentType": "application/json"},
            ),
        )
        request = api_v1.ExecuteStateTransactionRequest(
            storeName=self._store,
            # The projection goes last: the outbox removes projections from the list it
            # iterates over, which is only safe for the final element.
            operations=[upsert, projection],
        )
        stub: Any = self._client._stub
        await _call(stub.ExecuteStateTransaction(request))

    async def ping(self) -> None:
        await self.get(_READINESS_PROBE_KEY)


class DaprNotificationClient:
    """Invokes notification-service by app-id; Dapr resolves where it runs."""

    def __init__(self, client: DaprClient, app_id: str, method: str, timeout_seconds: int) -> None:
        self._client = client
        self._app_id = app_id
        self._method = method
        self._timeout = timeout_seconds

    async def notify(self, event: TaskEvent) -> None:
        body = NotifyRequest(event=event).model_dump_json().encode()
        await _call(
            self._client.invoke_method(
                self._app_id,
                self._method,
                data=body,
                content_type="application/json",
                http_verb="POST",
                timeout=self._timeout,
            )
        )


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
            state=DaprStateStore(
                client,
                settings.state_store,
                etags_count_writes=await _is_redis_store(client, settings.state_store),
            ),
            secrets=DaprSecretStore(
                client, settings.secret_store, unavailable=InfrastructureUnavailable
            ),
            notifications=DaprNotificationClient(
                client,
                settings.notification_app_id,
                settings.notify_method,
                settings.notify_timeout_seconds,
            ),
        )
    finally:
        await client.close()  # type: ignore[no-untyped-call]
