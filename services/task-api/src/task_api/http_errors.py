"""Every error leaves as JSON `{"detail": ...}` with the status the contract names."""

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from task_api.conditional import TooMuchContention
from task_api.errors import (
    IdempotencyKeyReused,
    InvalidCursor,
    PreconditionFailed,
    TaskBusy,
    TaskGone,
    TaskNotFound,
)
from task_api.etags import MalformedIfMatch
from task_api.ports import InfrastructureUnavailable

logger = logging.getLogger(__name__)

_STATUS_AND_DETAIL: dict[type[Exception], tuple[int, str]] = {
    TaskNotFound: (404, "task not found"),
    TaskGone: (410, "the task this Idempotency-Key created has been deleted since"),
    PreconditionFailed: (412, "If-Match does not name the current version of the task"),
    TaskBusy: (409, "the task is being changed by another request; retry"),
    TooMuchContention: (409, "too many concurrent writers; retry"),
    InvalidCursor: (400, "invalid cursor"),
    MalformedIfMatch: (
        400,
        'If-Match must be * or a comma-separated list of quoted entity tags, e.g. "3f2c..."',
    ),
    IdempotencyKeyReused: (422, "Idempotency-Key was already used with a different body"),
}


def install_error_handlers(app: FastAPI, retry_after_seconds: int) -> None:
    async def domain_error(_: Request, error: Exception) -> JSONResponse:
        status, detail = _STATUS_AND_DETAIL[type(error)]
        return JSONResponse({"detail": detail}, status_code=status)

    async def unavailable(_: Request, error: Exception) -> JSONResponse:
        logger.warning("infrastructure unavailable: %s", error)
        return JSONResponse(
            {"detail": "a backing service is unavailable; retry later"},
            status_code=503,
            headers={"Retry-After": str(retry_after_seconds)},
        )

    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=error)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    for error_type in _STATUS_AND_DETAIL:
        app.add_exception_handler(error_type, domain_error)
    app.add_exception_handler(InfrastructureUnavailable, unavailable)
    app.add_exception_handler(Exception, unexpected)
