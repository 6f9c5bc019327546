"""Traces: each app continues the W3C trace that daprd hands it (the traceparent of an
invocation, of a subscription delivery) and hands it on with every call to its own
sidecar, so that one trace follows a task through both services and both sidecars.

Spans are exported over OTLP/gRPC when OTEL_EXPORTER_OTLP_ENDPOINT is set (the
OpenTelemetry SDK's other OTEL_* settings apply too, such as OTEL_BSP_*). Without it no
span is recorded, but the sidecar's trace context still travels, so that the sidecars'
own spans and the log lines (logs.py) still join its trace.

What a caller's trace context may decide, and that only the W3C trace context travels
(no baggage): trace_edge.py. The sampler is trace_edge's EdgeSampler at the ratio
OTEL_TRACES_SAMPLER_ARG (default 1), in place of OTEL_TRACES_SAMPLER's.
"""

import logging
import os
from collections.abc import MutableMapping
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from dapr_service_kit.trace_edge import EdgeSampler, EdgeTraceContext

logger = logging.getLogger(__name__)
ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"
RATIO_VARIABLE = "OTEL_TRACES_SAMPLER_ARG"
# The token daprd presents when it calls the app (the app's settings read it too).
SIDECAR_TOKEN_VARIABLE = "APP_API_TOKEN"  # noqa: S105 - a variable name, not a secret
# Probes and scrapes: a span per kubelet probe would bury the traces worth reading.
UNTRACED_PATHS = frozenset({"/health", "/ready", "/metrics"})

_exporting = False
_instrumented = False


def configure_tracing(service: str) -> None:
    """Once per process, before the app and its Dapr client exist: read and pass on
    only the W3C trace context, trusting only the sidecar's (trace_edge), export this
    service's spans if an OTLP endpoint is set, and put the trace context on the calls
    to the sidecar (aiohttp carries the SDK's invocations, gRPC everything else)."""
    global _exporting, _instrumented
    propagate.set_global_textmap(EdgeTraceContext(os.environ.get(SIDECAR_TOKEN_VARIABLE)))
    endpoint = os.environ.get(ENDPOINT_VARIABLE)
    if endpoint and not _exporting:
        provider = new_tracer_provider(service)
        # Batches leave on a thread of their own: nothing waits on the exporter.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        _exporting = True
        logger.info("%s: exporting traces to %s", service, endpoint)
    if not _instrumented:
        AioHttpClientInstrumentor().instrument()
        GrpcAioInstrumentorClient().instrument()  # type: ignore[no-untyped-call]
        _instrumented = True


def new_tracer_provider(service: str) -> TracerProvider:
    """The service's spans, sampled as trace_edge's EdgeSampler decides."""
    return TracerProvider(
        sampler=EdgeSampler(sampling_ratio()),
        resource=Resource.create({SERVICE_NAME: service}),
    )


def sampling_ratio() -> float:
    """OTEL_TRACES_SAMPLER_ARG as a ratio (default 1: every trace, a development
    setting); an unreadable value is reported and taken as 1."""
    raw = os.environ.get(RATIO_VARIABLE)
    if raw is None:
        return 1.0
    try:
        ratio = float(raw)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        logger.warning(
            "%s=%r is not a ratio from 0 to 1: sampling every trace", RATIO_VARIABLE, raw
        )
        return 1.0
    return ratio


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in UNTRACED_PATHS


def telemetry_config() -> TelemetryConfig:
    """FastAPI's own OpenTelemetry support: a server span per request, a child of the
    caller's traceparent, while spans are exported; off otherwise, since it would look
    for a configured provider on every request. Request metrics stay with metrics.py."""
    return {
        "tracing": _exporting,
        "metrics": False,
        "logs": False,
        # Spans for dependency resolution and serialisation: more noise than insight.
        "operation_spans": False,
        "exclude": _untraced,
    }
