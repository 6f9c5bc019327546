"""422 answers to requests that fail validation, in FastAPI's own shape (`{"detail":
[{type, loc, msg, input}, ...]}`), that can always be sent.

JSON lets a string hold a lone UTF-16 surrogate escape (`"\\ud800"`, half of a pair with
no other half): no character, but Python decodes it into a str, pydantic refuses it, and
FastAPI's own handler echoes it back. UTF-8 cannot encode it, so the 422 itself failed
and the client got a 500. Here every string of the answer is made encodable, a lone
surrogate shown as the escape it came as, and the message says what is wrong."""

from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

LONE_SURROGATE = (
    "Input should be a valid string: it holds a lone UTF-16 surrogate (a \\ud800-\\udfff"
    " escape that is not half of a pair), which is not a character"
)


def _has_lone_surrogate(value: object) -> bool:
    return isinstance(value, str) and any("\ud800" <= c <= "\udfff" for c in value)


def _encodable(value: Any) -> Any:
    """The JSON value with every string (keys too) encodable as UTF-8."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encodable(v) for v in value]
    return value


async def _unprocessable(_: Request, error: Exception) -> JSONResponse:
    # Registered for RequestValidationError only.
    errors = [
        {**e, "msg": LONE_SURROGATE}
        if e.get("type") == "string_unicode" and _has_lone_surrogate(e.get("input"))
        else e
        for e in cast(RequestValidationError, error).errors()
    ]
    return JSONResponse({"detail": _encodable(jsonable_encoder(errors))}, status_code=422)


def answer_validation_errors(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _unprocessable)
