"""What a trace context that comes from outside may decide.

Two kinds of caller send an app a `traceparent`: its own sidecar (every delivery and
invocation, with the sidecar's app token in `dapr-api-token`), and public callers
(task-api's REST clients, anyone who reaches a port). The sidecar's decides: its
sampled flag is followed, so a trace the sidecar records is recorded whole. A public
caller's is continued (its trace id, its span as the parent) but does not decide:
whether the request is recorded is this app's own draw at the sampling ratio. Otherwise
any client could have every one of its requests traced, in both apps and both sidecars
(which follow the apps' flag), at about 40 % of GET throughput.

Only the W3C trace context travels (traceparent, tracestate): a `baggage` header is
neither read nor passed on. What a client put there would otherwise ride along on every
call to the sidecar and, through the outbox's copy of a write's metadata, in every event
its request causes.
"""

import hmac
import random
from collections.abc import Callable, Sequence

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import CarrierT, Getter, default_getter
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

SIDECAR_TOKEN_HEADER = "dapr-api-token"  # noqa: S105 - a header name, not a secret
_PUBLIC_CALLER = otel_context.create_key("dapr_service_kit.public_caller")


def from_public_caller(context: Context | None) -> bool:
    """Whether the context was read from a request that is not the sidecar's."""
    return bool(otel_context.get_value(_PUBLIC_CALLER, context))


class EdgeTraceContext(TraceContextTextMapPropagator):
    """The W3C trace context and nothing else; a context read from a request without
    the sidecar's app token is marked as a public caller's."""

    def __init__(self, sidecar_token: str | None) -> None:
        super().__init__()
        self._token = sidecar_token.encode() if sidecar_token else None

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        extracted = super().extract(carrier, context, getter)
        if not self._from_sidecar(getter.get(carrier, SIDECAR_TOKEN_HEADER)):
            extracted = otel_context.set_value(_PUBLIC_CALLER, True, extracted)
        return extracted

    def _from_sidecar(self, presented: Sequence[str] | None) -> bool:
        if self._token is None or not presented:
            return False
        # Header values arrive decoded as latin-1; compared in constant time.
        return hmac.compare_digest(presented[0].encode("latin-1", "replace"), self._token)


# Requests that change something: their traces are how a task is followed.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The attribute FastAPI's server span starts with (OpenTelemetry's HTTP conventions).
METHOD_ATTRIBUTE = "http.request.method"


def is_write(kind: SpanKind | None, attributes: Attributes) -> bool:
    """Whether a span starts the handling of a write request."""
    return (
        kind is SpanKind.SERVER
        and attributes is not None
        and attributes.get(METHOD_ATTRIBUTE) in WRITE_METHODS
    )


class EdgeSampler(Sampler):
    """Where the trace starts here (a new trace, or under a public caller's
    traceparent): writes at `ratio`, anything else (reads, the app's own background
    calls) at `read_ratio`, at most `ratio`. A new trace is drawn by its id; under a
    public caller's traceparent by a draw of this app, whatever its sampled flag says
    (not by the trace id, which that caller chose). Under a local parent or the
    sidecar's: as the parent decided.

    Why reads apart: a read's trace is one server span and one sidecar call, the same
    every time, and recording every one cost about 40 % of GET throughput; a write's
    trace follows the task through both services, which is what tracing is for here."""

    def __init__(
        self,
        ratio: float,
        read_ratio: float | None = None,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._ratio = ratio
        self._read_ratio = ratio if read_ratio is None else min(read_ratio, ratio)
        self._draw = draw
        self._parent_based = ParentBased(TraceIdRatioBased(ratio))
        self._new_write = TraceIdRatioBased(ratio)
        self._new_read = TraceIdRatioBased(self._read_ratio)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        write = is_write(kind, attributes)
        if parent.is_valid and parent.is_remote and from_public_caller(parent_context):
            if self._draw() < (self._ratio if write else self._read_ratio):
                return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, parent.trace_state)
            return SamplingResult(Decision.DROP, None, parent.trace_state)
        if not parent.is_valid:
            new = self._new_write if write else self._new_read
            return new.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )
        return self._parent_based.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"EdgeSampler{{writes {self._ratio}, reads {self._read_ratio}}}"
