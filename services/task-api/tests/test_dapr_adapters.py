"""The outbox transaction task-api sends its sidecar: what of the request's context its
event's envelope gets (the outbox copies the task upsert's metadata into it)."""

from typing import Any, cast
from uuid import uuid4

from opentelemetry import baggage, context, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from task_api.dapr_adapters import TaskStateStore
from task_contracts import EventType, TaskEvent, TaskStatus


def test_the_events_envelope_gets_the_trace_context_and_no_baggage() -> None:
    # Whatever the process's propagators (here OpenTelemetry's default, with baggage),
    # and whatever baggage the request's context holds.
    saved = propagate.get_global_textmap()
    propagate.set_global_textmap(
        CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    )
    request_span = NonRecordingSpan(
        SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, False, TraceFlags(1))
    )
    current = trace.set_span_in_context(request_span, baggage.set_baggage("secret", "hunter2"))
    token = context.attach(current)
    try:
        store = TaskStateStore(cast(Any, None), "statestore", etags_count_writes=True)
        event = TaskEvent(
            event_type=EventType.CREATED,
            task_id=uuid4(),
            title="T",
            status=TaskStatus.PENDING,
        )
        request = store._outbox_transaction("task:1", b"{}", None, event, None)
    finally:
        context.detach(token)
        propagate.set_global_textmap(saved)
    upsert = request.operations[0].request
    assert dict(upsert.metadata) == {
        "type": "task.created",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    }
