"""Prometheus metrics of an app, served on a port of their own (never through the API
and its key): requests by route and status, and whatever the service adds with the
prometheus_client types. Off unless the service's settings give a port; daprd's own
metrics stay on daprd's ports.

The server is prometheus_client's, in a thread of its own: a scrape never waits on
the event loop, nor the loop on a scrape.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from prometheus_client import Counter, Histogram, start_http_server
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "http_requests_total",
    "Requests answered, by route template, method and status",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer a request, by route template and method",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class RequestMetrics:
    """ASGI middleware counting every answered request under its route's template
    (`/tasks/{task_id}`, not the id: one series per route), or `unmatched`."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app raises before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            found = scope.get("route")
            route = getattr(found, "path", None) or "unmatched"
            REQUESTS.labels(route, scope["method"], str(status)).inc()
            LATENCY.labels(route, scope["method"]).observe(time.perf_counter() - started)


@contextlib.asynccontextmanager
async def metrics_served(host: str, port: int | None) -> AsyncIterator[None]:
    """Serve /metrics on host:port while the app runs (nothing when port is None)."""
    if port is None:
        yield
        return
    server, _ = start_http_server(port, addr=host)
    try:
        yield
    finally:
        await asyncio.to_thread(server.shutdown)
        server.server_close()
