"""Traces: each app continues the W3C trace that daprd hands it (the traceparent of an
invocation, of a subscription delivery) and hands it on with every call to its own
sidecar, so that one trace follows a task through both services and both sidecars.

Spans are exported over OTLP/gRPC when OTEL_EXPORTER_OTLP_ENDPOINT is set (the
OpenTelemetry SDK's other OTEL_* settings apply too, such as OTEL_BSP_*). Without it no
span is recorded, but the sidecar's trace context still travels, so that the sidecars'
own spans and the log lines (logs.py) still join its trace.

What a caller's trace context may decide, and that only the W3C trace context travels
(no baggage): trace_edge.py. The sampler is trace_edge's EdgeSampler, in place of
OTEL_TRACES_SAMPLER's: writes at the ratio OTEL_TRACES_SAMPLER_ARG (default 1), the
traces that start with anything else (reads, background calls) at
TRACES_READ_SAMPLING_RATIO (default 0.01, never above the other).
"""

import logging
import os

from fastapi.telemetry import TelemetryConfig
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from dapr_service_kit.trace_edge import EdgeSampler, EdgeTraceContext

logger = logging.getLogger(__name__)
ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"
RATIO_VARIABLE = "OTEL_TRACES_SAMPLER_ARG"
READ_RATIO_VARIABLE = "TRACES_READ_SAMPLING_RATIO"
# One read in a hundred: enough to see what reads cost and where, at about 1 % of what
# tracing them all costs (bench/results/bench.md).
DEFAULT_READ_RATIO = 0.01
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
    to the sidecar: the SDK's invocations go through aiohttp, instrumented here; the
    gRPC calls carry it through sidecar_trace.py, on the client client.py opens."""
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
        _instrumented = True


def new_tracer_provider(service: str) -> TracerProvider:
    """The service's spans, sampled as trace_edge's EdgeSampler decides."""
    return TracerProvider(
        sampler=EdgeSampler(sampling_ratio(), sampling_ratio(READ_RATIO_VARIABLE)),
        resource=Resource.create({SERVICE_NAME: service}),
    )


def sampling_ratio(variable: str = RATIO_VARIABLE) -> float:
    """A ratio from the environment: OTEL_TRACES_SAMPLER_ARG (default 1: every write,
    a development setting) or TRACES_READ_SAMPLING_RATIO (default 0.01). An unreadable
    value is reported and the default taken."""
    default = DEFAULT_READ_RATIO if variable == READ_RATIO_VARIABLE else 1.0
    raw = os.environ.get(variable)
    if raw is None:
        return default
    try:
        ratio = float(raw)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        logger.warning("%s=%r is not a ratio from 0 to 1: taking %s", variable, raw, default)
        return default
    return ratio


def exporting() -> bool:
    """Whether this process exports spans (configure_tracing found an OTLP endpoint)."""
    return _exporting


def telemetry_config() -> TelemetryConfig:
    """FastAPI's own OpenTelemetry support, off: request_trace.py makes the server spans
    (at a fraction of its cost for requests that are not sampled), metrics.py counts the
    requests."""
    return {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
