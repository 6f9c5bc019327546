"""Log lines: text for people, JSON for collectors, with the trace daprd sent."""

import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dapr_service_kit.logs import configure_logging
from dapr_service_kit.request_trace import RequestTrace
from dapr_service_kit.trace_edge import EdgeTraceContext
from dapr_service_kit.tracing import telemetry_config

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
# Deliveries, as daprd makes them: with its app token (trace_edge trusts only those).
FROM_SIDECAR = {"dapr-api-token": "sidecar-token"}


@pytest.fixture(autouse=True)
def propagator() -> Iterator[None]:
    """The process's propagator as configure_tracing sets it, restored after."""
    saved = propagate.get_global_textmap()
    propagate.set_global_textmap(EdgeTraceContext(FROM_SIDECAR["dapr-api-token"]))
    yield
    propagate.set_global_textmap(saved)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """What the configured handler writes, with the root logger restored after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    yield stream
    root.handlers, root.level = saved[0], saved[1]


def app_logging_one_line() -> FastAPI:
    app = FastAPI()

    @app.post("/events/x")
    async def deliver() -> dict[str, str]:
        logging.getLogger("notifications").info(
            'NOTIFY task.completed "Tea"', extra={"event_id": "e-1"}
        )
        return {"status": "SUCCESS"}

    app.add_middleware(RequestTrace)
    return app


def configure_into(stream: io.StringIO, log_format: str) -> None:
    configure_logging("notification-service", log_format)
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]


def test_json_lines_carry_the_service_the_trace_and_the_event(captured: io.StringIO) -> None:
    configure_into(captured, "json")
    with TestClient(app_logging_one_line()) as client:
        client.post("/events/x", headers={"traceparent": TRACEPARENT, **FROM_SIDECAR})
    [line] = [json.loads(raw) for raw in captured.getvalue().splitlines() if "NOTIFY" in raw]
    assert line["message"] == 'NOTIFY task.completed "Tea"'
    assert line["level"] == "INFO"
    assert line["service"] == "notification-service"
    assert line["logger"] == "notifications"
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert line["span_id"] == "00f067aa0ba902b7"
    assert line["event_id"] == "e-1"
    assert line["timestamp"].endswith("+00:00")


def test_text_lines_stay_as_people_read_them(captured: io.StringIO) -> None:
    configure_into(captured, "text")
    with TestClient(app_logging_one_line()) as client:
        client.post("/events/x", headers={"traceparent": TRACEPARENT, **FROM_SIDECAR})
    assert 'INFO notifications: NOTIFY task.completed "Tea"' in captured.getvalue().splitlines()


def test_a_line_outside_a_request_has_no_trace(captured: io.StringIO) -> None:
    configure_into(captured, "json")
    logging.getLogger("x").info("starting")
    line = json.loads(captured.getvalue())
    assert "trace_id" not in line
    assert "span_id" not in line


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "00-short-00f067aa0ba902b7-01",
        # What daprd sends while tracing is off: invalid ids, not a trace.
        "00-00000000000000000000000000000000-0000000000000000-00",
    ],
)
def test_a_malformed_or_invalid_traceparent_is_no_trace(captured: io.StringIO, header: str) -> None:
    configure_into(captured, "json")
    with TestClient(app_logging_one_line()) as client:
        client.post("/events/x", headers={"traceparent": header, **FROM_SIDECAR})
    [line] = [json.loads(raw) for raw in captured.getvalue().splitlines() if "NOTIFY" in raw]
    assert "trace_id" not in line
    assert "span_id" not in line


def test_an_unknown_format_is_refused(captured: io.StringIO) -> None:
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        configure_logging("task-api", "xml")


def test_while_spans_are_recorded_a_line_carries_the_apps_span(captured: io.StringIO) -> None:
    """With tracing on, the server span continues daprd's trace; a line logged in
    the request names that span (not daprd's), so the line and the span meet in Jaeger."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    app = FastAPI(telemetry=telemetry_config())
    router = APIRouter()

    @router.post("/events/x")
    async def deliver() -> dict[str, str]:
        logging.getLogger("notifications").info("NOTIFY")
        return {"status": "SUCCESS"}

    app.include_router(router)
    app.add_middleware(RequestTrace, tracer_provider=provider)
    configure_into(captured, "json")
    with TestClient(app) as client:
        client.post("/events/x", headers={"traceparent": TRACEPARENT, **FROM_SIDECAR})
    [line] = [json.loads(raw) for raw in captured.getvalue().splitlines() if "NOTIFY" in raw]
    [server] = [s for s in spans.get_finished_spans() if s.name == "POST /events/x"]
    assert server.parent is not None
    assert f"{server.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert line["span_id"] == f"{server.context.span_id:016x}"
