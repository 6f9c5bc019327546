"""Traces: each app continues the W3C trace that daprd hands it (the traceparent of an
invocation, of a subscription delivery) and hands it on with every call to its own
sidecar, so that one trace follows a task through both services and both sidecars.

Spans are exported over OTLP/gRPC when OTEL_EXPORTER_OTLP_ENDPOINT is set (the other
OTEL_* settings of the OpenTelemetry SDK apply too: OTEL_TRACES_SAMPLER, OTEL_BSP_*).
Without it no span is recorded, but the trace context still travels, so that the
sidecars' own spans and the log lines (logs.py) still join the caller's trace.
"""

import logging
import os
from collections.abc import MutableMapping
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

logger = logging.getLogger(__name__)
ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"
# Probes and scrapes: a span per kubelet probe would bury the traces worth reading.
UNTRACED_PATHS = frozenset({"/health", "/ready", "/metrics"})

_exporting = False
_instrumented = False


def configure_tracing(service: str) -> None:
    """Once per process, before the app and its Dapr client exist: export this
    service's spans if an OTLP endpoint is set, and put the trace context on the calls
    to the sidecar (aiohttp carries the SDK's invocations, gRPC everything else)."""
    global _exporting, _instrumented
    endpoint = os.environ.get(ENDPOINT_VARIABLE)
    if endpoint and not _exporting:
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
        # Batches leave on a thread of their own: nothing waits on the exporter.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        _exporting = True
        logger.info("%s: exporting traces to %s", service, endpoint)
    if not _instrumented:
        AioHttpClientInstrumentor().instrument()
        GrpcAioInstrumentorClient().instrument()  # type: ignore[no-untyped-call]
        _instrumented = True


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
