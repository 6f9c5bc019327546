"""The ports of `task_api.ports`, implemented on the Dapr sidecar through the one async
Dapr client of the process. This is the only module of task-api that knows gRPC."""

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from dapr.aio.clients import DaprClient
from dapr.proto import api_v1, common_v1
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from dapr_service_kit.client import open_sidecar
from dapr_service_kit.errors import InfrastructureUnavailable, sidecar_call
from dapr_service_kit.state_store import DaprStateStore
from task_api.ports import KeyVersion
from task_api.runtime import Ports
from task_api.settings import Settings
from task_contracts import NotifyRequest, TaskEvent

# The outbox copies a write's metadata into its event's envelope: only the W3C trace
# context goes there, never baggage (what a client sent would ride in every event its
# request causes), whatever propagators the process is configured with.
TRACE_CONTEXT = TraceContextTextMapPropagator()


class TaskStateStore(DaprStateStore):
    """The shared state adapter, plus the outbox transaction task-api commits with."""

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
        """One state transaction on an outbox-enabled store: Dapr publishes it to the
        outbox topic once the transaction commits.

        The outbox publishes every upsert of the transaction; a second upsert of the same
        key marked `outbox.projection` replaces what is published for it, so the
        subscribers get the TaskEvent while the store keeps the task. The SDK's
        execute_state_transaction drops per-operation metadata, so the request is built
        here on the client's own stub.
        """
        # No span of its own: the sidecar records the transaction as a child of the
        # request's span, which carries the task and its event, and the event's
        # deliveries hang from it too. A span for the commit cost a write more than
        # tracing's budget (bench/results/profiles/) and said what the sidecar's says.
        request_span = trace.get_current_span()
        request_span.set_attributes(
            {
                "task.id": str(event.task_id),
                "messaging.message.id": str(event.event_id),
                "messaging.message.type": event.event_type.value,
            }
        )
        request = self._outbox_transaction(key, data, etag, event, ttl_seconds)
        if delete is not None:
            # Not an upsert: the outbox publishes nothing for it. Before the projection,
            # which must stay the last operation (see below).
            request.operations.insert(
                1,
                api_v1.TransactionalStateOperation(
                    operationType="delete",
                    request=common_v1.StateItem(
                        key=delete.key, etag=common_v1.Etag(value=delete.etag)
                    ),
                ),
            )
        stub: Any = self._client._stub
        await sidecar_call(stub.ExecuteStateTransaction(request))

    def _outbox_transaction(
        self,
        key: str,
        data: bytes,
        etag: str | None,
        event: TaskEvent,
        ttl_seconds: int | None,
    ) -> api_v1.ExecuteStateTransactionRequest:
        # Copied by the outbox into the CloudEvent envelope: subscriptions route on it.
        task_metadata = {"type": event.event_type.value}
        if ttl_seconds:
            task_metadata["ttlInSeconds"] = str(ttl_seconds)
        # The envelope's traceparent, which daprd reads first when it delivers the
        # event. daprd 1.18's outbox leaves it empty beside its own trace id, and an
        # empty one starts no trace: every delivery would lose the write's trace. The
        # request's span is current: the deliveries become its children.
        TRACE_CONTEXT.inject(task_metadata)
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
        return api_v1.ExecuteStateTransactionRequest(
            storeName=self._store,
            # The projection goes last: the outbox removes projections from the list it
            # iterates over, which is only safe for the final element.
            operations=[upsert, projection],
        )


# A lag that takes longer to learn is not worth waiting for: the next poll asks again.
LAG_TIMEOUT_SECONDS = 1


class DaprNotificationClient:
    """Invokes notification-service by app-id; Dapr resolves where it runs. The SDK
    invokes over HTTP through its own aiohttp session (its default protocol)."""

    def __init__(self, client: DaprClient, settings: Settings) -> None:
        self._client = client
        self._app_id = settings.notification_app_id
        self._method = settings.notify_method
        self._lag_method = settings.lag_method
        self._timeout = settings.notify_timeout_seconds

    async def notify(self, event: TaskEvent) -> None:
        body = NotifyRequest(event=event).model_dump_json().encode()
        await sidecar_call(
            self._client.invoke_method(
                self._app_id,
                self._method,
                data=body,
                content_type="application/json",
                http_verb="POST",
                timeout=self._timeout,
            )
        )

    async def event_lag_seconds(self) -> float:
        response = await sidecar_call(
            self._client.invoke_method(
                self._app_id, self._lag_method, http_verb="GET", timeout=LAG_TIMEOUT_SECONDS
            )
        )
        try:
            return float(json.loads(response.data)["lag_seconds"])
        except (ValueError, KeyError, TypeError) as error:
            raise InfrastructureUnavailable(f"unreadable lag: {response.data[:100]!r}") from error


@contextlib.asynccontextmanager
async def connect_dapr(settings: Settings) -> AsyncIterator[Ports]:
    async with open_sidecar(settings, TaskStateStore) as sidecar:
        yield Ports(
            state=sidecar.state,
            secrets=sidecar.secrets,
            notifications=DaprNotificationClient(sidecar.client, settings),
        )
