"""How both services log: a human line where a person reads the terminal (`make up`,
`make watch`), one JSON object per line where logs are collected (containers set
LOG_FORMAT=json). Both carry the W3C trace context that daprd sent with the request
being handled, so a line can be followed to its trace.

JSON fields: timestamp (UTC, ISO 8601), level, service, logger, message, and when
known trace_id, span_id (the span of the sidecar call that reached this app) and
event_id (pass it as `extra={"event_id": ...}`).
"""

import contextvars
import json
import logging
import os
import re
from datetime import UTC, datetime

from starlette.types import ASGIApp, Receive, Scope, Send

# The trace id and parent span id of the request this task is handling.
_trace: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "trace", default=None
)
_TRACEPARENT = re.compile(rb"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"


def trace_of(traceparent: bytes | None) -> tuple[str, str] | None:
    """(trace id, span id) of a W3C traceparent header; None if it is not a valid one.
    (daprd sends all-zero ids, which the standard calls invalid, while tracing is off.)"""
    found = _TRACEPARENT.match(traceparent.strip().lower()) if traceparent else None
    if not found or not found[1].strip(b"0") or not found[2].strip(b"0"):
        return None
    return found[1].decode(), found[2].decode()


class TraceContext:
    """ASGI middleware: the request's traceparent, as daprd sends it on every
    invocation and subscription delivery, becomes the trace of its log lines."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        header = next((v for k, v in scope["headers"] if k == b"traceparent"), None)
        token = _trace.set(trace_of(header))
        try:
            await self._app(scope, receive, send)
        finally:
            _trace.reset(token)


class _WithTrace(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        trace = _trace.get()
        record.trace_id, record.span_id = trace if trace else (None, None)
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
