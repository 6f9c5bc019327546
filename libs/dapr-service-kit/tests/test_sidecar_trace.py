"""Calls to the sidecar carry the current trace context and make no span of their own."""

from typing import Any

import pytest
from grpc.aio import ClientCallDetails, Metadata
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from dapr_service_kit.sidecar_trace import TraceContextOnCalls


@pytest.fixture(autouse=True)
def w3c_only() -> None:
    propagate.set_global_textmap(TraceContextTextMapPropagator())


async def sent_metadata(metadata: Metadata | None) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    async def continuation(details: ClientCallDetails, request: Any) -> str:
        seen.extend(details.metadata or ())
        return "answer"

    details = ClientCallDetails("/dapr.proto.runtime.v1.Dapr/GetState", 5.0, metadata, None, None)
    assert await TraceContextOnCalls().intercept_unary_unary(continuation, details, b"") == "answer"
    return seen


async def test_a_call_carries_the_current_span_and_keeps_its_metadata() -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    with provider.get_tracer("t").start_as_current_span("request") as span:
        sent = dict(await sent_metadata(Metadata(("dapr-api-token", "x"))))
    ids = span.get_span_context()
    assert sent["traceparent"] == f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{ids.trace_flags:02x}"
    assert ids.trace_flags.sampled
    assert sent["dapr-api-token"] == "x"
    # The request's span only: the call made none.
    assert [s.name for s in spans.get_finished_spans()] == ["request"]


async def test_without_a_trace_nothing_is_added() -> None:
    assert trace.get_current_span().get_span_context().is_valid is False
    assert await sent_metadata(None) == []
