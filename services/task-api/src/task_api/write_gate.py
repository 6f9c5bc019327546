"""Writes pass the event pipeline's back-pressure (task_api.backpressure) through a write
slot, taken only when a write is ready for the store: its body has arrived and been
checked (task_api.body_guard reads it first, with a deadline), and it holds its task's
lease (TaskService takes the lease first). A slow client, or a write waiting for another
writer of the same task, holds no slot that writes to other tasks need. A write that
gets no slot within HOLD_SECONDS is refused with 503 and Retry-After, and has changed
nothing."""

import contextlib
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from task_api.backpressure import NoSlot, WriteLimiter
from task_api.tasks import WriteSlot

REFUSAL = "notifications are falling behind the writes; retry shortly"
RETRY_AFTER_SECONDS = 1
HOLD_SECONDS = 1.0
REFUSED = Counter("writes_refused_total", "Writes refused because no slot freed up in time")


def _no_limit() -> AbstractAsyncContextManager[None]:
    return contextlib.nullcontext()


def write_slots(limiter: WriteLimiter | None) -> WriteSlot:
    """What TaskService enters around each write's store work (None: back-pressure
    off, writes are never held)."""
    if limiter is None:
        return _no_limit
    # HOLD_SECONDS is read at each write, so that a test can shorten it.
    return lambda: limiter.slot(HOLD_SECONDS)


def install_refusal(app: FastAPI) -> None:
    async def refused(_: Request, error: Exception) -> JSONResponse:
        REFUSED.inc()
        return JSONResponse(
            {"detail": REFUSAL},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    app.add_exception_handler(NoSlot, refused)
