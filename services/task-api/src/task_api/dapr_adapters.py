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
from dapr_service_kit.state_store import DaprStateStore, InfrastructureUnavailable, sidecar_call
from task_api.runtime import Ports
from task_api.settings import Settings
from task_contracts import NotifyRequest, TaskEvent

tracer = trace.get_tracer(__name__)
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
    ) -> None:
        """One state transaction on an outbox-enabled store: Dapr publishes it to the
        outbox topic once the transaction commits.

        The outbox publishes every upsert of the transaction; a second upsert of the same
        key marked `outbox.projection` replaces what is published for it, so the
        subscribers get the TaskEvent while the store keeps the task. The SDK's
        execute_state_transaction drops per-operation metadata, so the request is built
        here on the client's own stub.
        """
        with tracer.start_as_current_span(
            f"{self._store} transaction",
            kind=trace.SpanKind.CLIENT,
            attributes={"task.id": str(event.task_id)},
        ):
            # The event's span: from the commit on, its deliveries are its children.
            publish = tracer.start_span(
                f"outbox publish {event.event_type.value}",
                kind=trace.SpanKind.PRODUCER,
                attributes={"messaging.message.id": str(event.event_id)},
            )
            request = self._outbox_transaction(key, data, etag, event, ttl_seconds, publish)
            stub: Any = self._client._stub
            try:
                await sidecar_call(stub.ExecuteStateTransaction(request))
            finally:
                publish.end()

    def _outbox_transaction(
        self,
        key: str,
        data: bytes,
        etag: str | None,
        event: TaskEvent,
        ttl_seconds: int | None,
        publish: trace.Span,
    ) -> api_v1.ExecuteStateTransactionRequest:
        # Copied by the outbox into the CloudEvent envelope: subscriptions route on it.
        task_metadata = {"type": event.event_type.value}
        if ttl_seconds:
            task_metadata["ttlInSeconds"] = str(ttl_seconds)
        # The envelope's traceparent, which daprd reads first when it delivers the
        # event. daprd 1.18's outbox leaves it empty beside its own trace id, and an
        # empty one starts no trace: every delivery would lose the write's trace.
        TRACE_CONTEXT.inject(task_metadata, context=trace.set_span_in_context(publish))
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
