"""How both services log: a human line where a person reads the terminal (`make up`,
`make watch`), one JSON object per line where logs are collected (containers set
LOG_FORMAT=json). Both carry the trace context of the request being handled
(request_trace.py), so a line can be followed to its trace.

JSON fields: timestamp (UTC, ISO 8601), level, service, logger, message, and when
known trace_id, span_id (this app's span while traces are exported, else the span of
the sidecar call that reached it) and event_id (pass it as `extra={"event_id": ...}`).
"""

import json
import logging
import os
from datetime import UTC, datetime

from opentelemetry import trace

TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"


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
