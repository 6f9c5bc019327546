"""The trace context on every gRPC call to the sidecar, and no span of the app's own for
it: the sidecar records the call (its span is a child of whatever span the app has
current), so a client span beside it only said the same thing twice. That was two of a
create's five spans in task-api and five of notification-service's six per event, each
built, encoded and exported (bench/results/profiles/).

The SDK's invocations go over HTTP through aiohttp, whose instrumentation (tracing.py)
does the same for them, with a span of its own.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from grpc.aio import ClientCallDetails, Metadata, UnaryUnaryClientInterceptor
from opentelemetry import propagate


class TraceContextOnCalls(UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Puts the current trace context (traceparent, tracestate) in each call's metadata."""

    async def intercept_unary_unary(
        self,
        continuation: Callable[[ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: ClientCallDetails,
        request: Any,
    ) -> Any:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        if carrier:
            metadata = Metadata(*(client_call_details.metadata or ()), *carrier.items())
            client_call_details = client_call_details._replace(metadata=metadata)
        return await continuation(client_call_details, request)
