"""Every error a route lets through leaves as JSON `{"detail": ...}`: each error the app
names with the status and detail its contract gives it, anything else as a 500."""

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

logger = logging.getLogger(__name__)

# What a client gets for an error: its status code and the detail.
Answer = tuple[int, str]
_Handler = Callable[[Request, Exception], Coroutine[Any, Any, JSONResponse]]


def install_error_handlers(
    app: FastAPI, answers: Mapping[type[Exception], Answer], *, retry_after_seconds: int
) -> None:
    """Answer each error type in `answers` (and its subclasses) as it says. A 503 is an
    outage the client may retry: it carries Retry-After and is logged as a warning. Any
    other exception is a 500 "internal error", logged with its traceback."""
    for error_type, (status, detail) in answers.items():
        app.add_exception_handler(error_type, _answer(status, detail, retry_after_seconds))
    app.add_exception_handler(Exception, _unexpected)


def _answer(status: int, detail: str, retry_after_seconds: int) -> _Handler:
    if status != 503:

        async def refused(_: Request, error: Exception) -> JSONResponse:
            return JSONResponse({"detail": detail}, status_code=status)

        return refused

    async def unavailable(_: Request, error: Exception) -> JSONResponse:
        logger.warning("answered 503 (%s): %s", type(error).__name__, error)
        return JSONResponse(
            {"detail": detail},
            status_code=status,
            headers={"Retry-After": str(retry_after_seconds)},
        )

    return unavailable


async def _unexpected(_: Request, error: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=error)
    return JSONResponse({"detail": "internal error"}, status_code=500)
