"""What a caller's trace context may decide: only the W3C trace context travels (no
baggage), the sidecar's sampled flag is followed, a public caller's is not."""

import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import baggage, propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from dapr_service_kit import tracing
from dapr_service_kit.logs import configure_logging
from dapr_service_kit.request_trace import RequestTrace
from dapr_service_kit.trace_edge import EdgeSampler, EdgeTraceContext, from_public_caller
from dapr_service_kit.tracing import configure_tracing, new_tracer_provider, telemetry_config

TOKEN = "sidecar-token"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
SAMPLED = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process as configure_tracing leaves it (without an exporter), the global
    propagator restored after."""
    saved = propagate.get_global_textmap()
    monkeypatch.setenv(tracing.SIDECAR_TOKEN_VARIABLE, TOKEN)
    monkeypatch.delenv(tracing.ENDPOINT_VARIABLE, raising=False)
    configure_tracing("test-service")
    yield
    propagate.set_global_textmap(saved)


@pytest.mark.usefixtures("configured")
def test_only_the_w3c_trace_context_is_read_and_passed_on() -> None:
    incoming = {"traceparent": SAMPLED, "baggage": "user.id=alice,secret=hunter2"}
    extracted = propagate.extract(incoming)
    assert baggage.get_all(extracted) == {}
    assert trace.get_current_span(extracted).get_span_context().trace_id == int(TRACE_ID, 16)
    # Baggage set in the process by any means still never leaves it.
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=baggage.set_baggage("secret", "hunter2", extracted))
    assert set(carrier) == {"traceparent"}


def test_only_a_request_with_the_sidecars_token_is_the_sidecars() -> None:
    edge = EdgeTraceContext(TOKEN)
    assert not from_public_caller(edge.extract({"traceparent": SAMPLED, "dapr-api-token": TOKEN}))
    for presented in ({}, {"dapr-api-token": "guess"}, {"dapr-api-token": ""}):
        assert from_public_caller(edge.extract({"traceparent": SAMPLED, **presented}))
    # Without a configured token nobody is the sidecar.
    untrusting = EdgeTraceContext(None)
    assert from_public_caller(untrusting.extract({"traceparent": SAMPLED, "dapr-api-token": ""}))


def remote_parent(sampled: bool) -> SpanContext:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    return SpanContext(int(TRACE_ID, 16), int(CALLER_SPAN, 16), is_remote=True, trace_flags=flags)


def decision(sampler: EdgeSampler, parent: SpanContext | None, public: bool) -> Decision:
    headers = {"dapr-api-token": "guess" if public else TOKEN}
    parent_context = EdgeTraceContext(TOKEN).extract(headers)
    if parent is not None:
        parent_context = trace.set_span_in_context(NonRecordingSpan(parent), parent_context)
    return sampler.should_sample(parent_context, int(TRACE_ID, 16), "POST /tasks").decision


def test_a_public_callers_sampled_flag_decides_nothing() -> None:
    never = EdgeSampler(0.0, draw=lambda: 0.5)
    assert decision(never, remote_parent(sampled=True), public=True) is Decision.DROP
    # The sidecar's decision is followed, either way.
    assert decision(never, remote_parent(sampled=True), public=False) is Decision.RECORD_AND_SAMPLE
    assert decision(never, remote_parent(sampled=False), public=False) is Decision.DROP
    # A public caller's trace is continued when the app's own draw says so: the draw,
    # not the trace id, which the caller chose.
    half = EdgeSampler(0.5, draw=lambda: 0.4)
    assert decision(half, remote_parent(sampled=False), public=True) is Decision.RECORD_AND_SAMPLE
    assert decision(EdgeSampler(0.5, draw=lambda: 0.6), remote_parent(True), True) is Decision.DROP
    # A new trace: by its id, at the ratio.
    assert decision(EdgeSampler(1.0), None, public=True) is Decision.RECORD_AND_SAMPLE
    assert decision(EdgeSampler(0.0), None, public=True) is Decision.DROP


def server_decision(sampler: EdgeSampler, method: str, parent: SpanContext | None) -> Decision:
    """What the sampler decides for FastAPI's server span of a request."""
    context = EdgeTraceContext(TOKEN).extract({})
    if parent is not None:
        context = trace.set_span_in_context(NonRecordingSpan(parent), context)
    attributes = {"http.request.method": method}
    return sampler.should_sample(
        context, int(TRACE_ID, 16), method, SpanKind.SERVER, attributes
    ).decision


def test_writes_are_sampled_at_the_ratio_reads_at_the_read_ratio() -> None:
    sampler = EdgeSampler(1.0, 0.0, draw=lambda: 0.5)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert server_decision(sampler, method, None) is Decision.RECORD_AND_SAMPLE
        assert server_decision(sampler, method, remote_parent(False)) is Decision.RECORD_AND_SAMPLE
    for method in ("GET", "HEAD", "OPTIONS"):
        assert server_decision(sampler, method, None) is Decision.DROP
        assert server_decision(sampler, method, remote_parent(True)) is Decision.DROP
    # A root that is no request (a background call): a read.
    assert sampler.should_sample(None, int(TRACE_ID, 16), "poll").decision is Decision.DROP
    # Under the sidecar's trace context, its decision, whatever the method.
    assert (
        decision(sampler, remote_parent(sampled=True), public=False) is Decision.RECORD_AND_SAMPLE
    )


def test_reads_are_never_sampled_more_than_writes() -> None:
    sampler = EdgeSampler(0.0, 1.0, draw=lambda: 0.5)
    assert server_decision(sampler, "GET", None) is Decision.DROP


def traced_app(provider: TracerProvider) -> FastAPI:
    app = FastAPI(telemetry=telemetry_config())

    @app.post("/tasks")
    async def create() -> dict[str, str]:
        logging.getLogger("tasks").info("created")
        return {}

    @app.get("/tasks")
    async def read() -> dict[str, str]:
        return {}

    app.add_middleware(RequestTrace, tracer_provider=provider)
    return app


@pytest.mark.usefixtures("configured")
def test_the_apps_sampler_ignores_a_public_sampled_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tracing.RATIO_VARIABLE, "0")
    provider = new_tracer_provider("task-api")
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    with TestClient(traced_app(provider)) as client:
        client.post("/tasks", headers={"traceparent": SAMPLED})
        assert spans.get_finished_spans() == ()
        client.post("/tasks", headers={"traceparent": SAMPLED, "dapr-api-token": TOKEN})
    [server] = spans.get_finished_spans()
    assert server.parent is not None
    assert f"{server.parent.span_id:016x}" == CALLER_SPAN


@pytest.mark.usefixtures("configured")
def test_the_app_traces_every_write_and_reads_at_the_read_ratio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(tracing.RATIO_VARIABLE, raising=False)
    monkeypatch.setenv(tracing.READ_RATIO_VARIABLE, "0")
    provider = new_tracer_provider("task-api")
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    with TestClient(traced_app(provider)) as client:
        for _ in range(20):
            client.get("/tasks")
        assert spans.get_finished_spans() == ()
        client.post("/tasks")
    [server] = spans.get_finished_spans()
    assert server.name.startswith("POST")


@pytest.mark.parametrize(("raw", "ratio"), [(None, 0.01), ("0.2", 0.2), ("-1", 0.01), ("x", 0.01)])
def test_the_read_ratio_is_traces_read_sampling_ratio(
    monkeypatch: pytest.MonkeyPatch, raw: str | None, ratio: float
) -> None:
    if raw is None:
        monkeypatch.delenv(tracing.READ_RATIO_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(tracing.READ_RATIO_VARIABLE, raw)
    assert tracing.sampling_ratio(tracing.READ_RATIO_VARIABLE) == ratio


@pytest.mark.parametrize(("raw", "ratio"), [(None, 1.0), ("0.01", 0.01), ("2", 1.0), ("x", 1.0)])
def test_the_ratio_is_otel_traces_sampler_arg(
    monkeypatch: pytest.MonkeyPatch, raw: str | None, ratio: float
) -> None:
    if raw is None:
        monkeypatch.delenv(tracing.RATIO_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(tracing.RATIO_VARIABLE, raw)
    assert tracing.sampling_ratio() == ratio


@pytest.mark.usefixtures("configured")
def test_without_spans_only_the_sidecars_trace_is_taken() -> None:
    """Not exporting, the app passes the trace context it was given on to its sidecar:
    a public caller's would decide what the sidecar records."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        configure_logging("task-api", "json")
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        app = FastAPI()

        @app.post("/tasks")
        async def create() -> dict[str, str]:
            current = trace.get_current_span().get_span_context()
            logging.getLogger("tasks").info("created %s", current.is_valid)
            return {}

        app.add_middleware(RequestTrace)
        with TestClient(app) as client:
            client.post("/tasks", headers={"traceparent": SAMPLED})
            client.post("/tasks", headers={"traceparent": SAMPLED, "dapr-api-token": TOKEN})
    finally:
        root.handlers, root.level = saved[0], saved[1]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    public, sidecar = [line for line in lines if line["logger"] == "tasks"]
    assert (public["message"], "trace_id" in public) == ("created False", False)
    assert (sidecar["message"], sidecar["trace_id"]) == ("created True", TRACE_ID)
