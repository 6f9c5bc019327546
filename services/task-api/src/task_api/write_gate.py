"""Writes pass the event pipeline's back-pressure at the door (task_api.backpressure):
one waits for a write slot up to HOLD_SECONDS and is refused (503) without one, before
its body is read or a route runs, so that held and refused writes cost little of the
CPU the events need to catch up."""

from collections.abc import Callable

from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from dapr_service_kit.api_key import route_path
from dapr_service_kit.asgi_refusal import refuse
from task_api.backpressure import NoSlot, WriteLimiter

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REFUSAL = "notifications are falling behind the writes; retry shortly"
RETRY_AFTER = [(b"retry-after", b"1")]
HOLD_SECONDS = 1.0
REFUSED = Counter("writes_refused_total", "Writes refused because no slot freed up in time")


class WriteGate:
    def __init__(self, app: ASGIApp, *, limiter: Callable[[Scope], WriteLimiter | None]) -> None:
        self._app = app
        self._limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = (
            self._limiter(scope)
            if scope["type"] == "http"
            and scope["method"] in WRITE_METHODS
            and route_path(scope).startswith("/tasks")
            else None
        )
        if limiter is None:
            await self._app(scope, receive, send)
            return
        try:
            async with limiter.slot(HOLD_SECONDS):
                await self._app(scope, receive, send)
        except NoSlot:
            REFUSED.inc()
            await refuse(send, 503, REFUSAL, RETRY_AFTER)


def runtime_limiter(scope: Scope) -> WriteLimiter | None:
    """The limiter the app's lifespan put on its runtime (None: back-pressure off)."""
    limiter: WriteLimiter | None = scope["app"].state.runtime.write_limiter
    return limiter
