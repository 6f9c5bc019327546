"""How both services log: a human line where a person reads the terminal (`make up`,
`make watch`), one JSON object per line where logs are collected (containers set
LOG_FORMAT=json). Both carry the W3C trace context that daprd sent with the request
being handled, so a line can be followed to its trace.

JSON fields: timestamp (UTC, ISO 8601), level, service, logger, message, and when
known trace_id, span_id (this app's span while traces are exported, else the span of
the sidecar call that reached it) and event_id (pass it as `extra={"event_id": ...}`).
"""

import json
import logging
import os
from datetime import UTC, datetime

from opentelemetry import context, propagate, trace
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from dapr_service_kit.trace_edge import from_public_caller

TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"


class TraceContext:
    """ASGI middleware: while no span of this app is current (spans are exported only
    when tracing is configured, tracing.py), the request's traceparent, as daprd sends
    it on every invocation and subscription delivery, becomes the current trace
    context: of the log lines, and of the calls this request makes to the sidecar.
    All-zero ids (daprd's while its tracing is off) are no trace and are dropped. A
    public caller's traceparent is not taken (trace_edge): passed on to the sidecar, its
    sampled flag would decide what the sidecar records."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or trace.get_current_span().get_span_context().is_valid:
            await self._app(scope, receive, send)
            return
        extracted = propagate.extract(Headers(scope=scope))
        if from_public_caller(extracted):
            await self._app(scope, receive, send)
            return
        token = context.attach(extracted)
        try:
            await self._app(scope, receive, send)
        finally:
            context.detach(token)


def current_trace() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the span current in this task, if any."""
    span = trace.get_current_span().get_span_context()
    if not span.is_valid:
        return None
    return trace.format_trace_id(span.trace_id), trace.format_span_id(span.span_id)


class _WithTrace(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ids = current_trace()
        record.trace_id, record.span_id = ids if ids else (None, None)
        return True


class JsonLines(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in ("trace_id", "span_id", "event_id"):
            value = getattr(record, field, None)
            if value is not None:
                line[field] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(service: str, log_format: str | None = None) -> None:
    """Log INFO and above to stderr, as text or JSON lines (LOG_FORMAT, default text),
    uvicorn's own lines included."""
    chosen = (log_format or os.environ.get("LOG_FORMAT") or "text").lower()
    if chosen not in ("text", "json"):
        raise ValueError(f"LOG_FORMAT must be text or json, not {chosen!r}")
    handler = logging.StreamHandler()
    handler.addFilter(_WithTrace())
    handler.setFormatter(JsonLines(service) if chosen == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    if chosen == "json":
        # uvicorn set up its own text handlers before it imported the app. Its access
        # log stays as uvicorn left it (off, with --no-access-log).
        for name in ("uvicorn", "uvicorn.error"):
            logging.getLogger(name).handlers = []
            logging.getLogger(name).propagate = True
