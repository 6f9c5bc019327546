"""Request bodies are JSON and at most a size limit, and arrive whole before anything
else looks at the request (a write's slot, the route): 415 for another media type, 413
for too many bytes, 408 for a body that has not arrived by its deadline.

Reading first, with a deadline, keeps a slow or stalled client cheap: it holds its
connection, never a write slot (task_api.write_gate), and not for long (uvicorn itself
has no timeout for a body).

A refused body is read to its end and dropped before the answer, up to DRAIN_BYTES, and
the answer closes the connection. Closing a socket with bytes still unread in it makes
the kernel reset the connection instead of ending it: the client may lose the answer it
has not read yet, and a `kubectl port-forward` (Tilt's) drops its stream on a reset.
A body known to be larger than the bound is answered at once (a client waiting for
`100 Continue` then never sends it); what a client sends anyway is dropped for
LINGER_SECONDS after the answer, for the client to read it, before the connection
closes.
"""

import asyncio
import contextlib
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dapr_service_kit.asgi_refusal import refuse

# How much of a refused body is read and dropped so that its connection ends cleanly:
# several times the limit, and about any body a client sends by mistake (a file).
DRAIN_BYTES = 4 * 1024 * 1024
# After answering a body beyond DRAIN_BYTES: how long what still comes is dropped.
LINGER_SECONDS = 2.0
CLOSE = [(b"connection", b"close")]
NOT_JSON = "request bodies must be application/json"
STALLED = "the request body did not arrive in time"


def _is_json(content_type: bytes) -> bool:
    media_type = content_type.split(b";")[0].strip().lower()
    return media_type == b"application/json" or media_type.endswith(b"+json")


class _Disconnected(Exception):
    """The client went away: nobody to answer."""


async def _next_chunk(receive: Receive) -> tuple[bytes, bool]:
    """The next piece of the body, and whether more follows."""
    message = await receive()
    if message["type"] != "http.request":
        raise _Disconnected
    return message.get("body", b""), message.get("more_body", False)


async def _drop(receive: Receive, budget: float) -> bool:
    """Read and drop the rest of the body; whether it ended within `budget` bytes."""
    while True:
        chunk, more = await _next_chunk(receive)
        budget -= len(chunk)
        if budget < 0:
            return False
        if not more:
            return True


@dataclass
class _Body:
    messages: list[Message]
    size: int
    ended: bool


class JsonBodyGuard:
    def __init__(self, app: ASGIApp, *, max_bytes: int, read_timeout_seconds: float) -> None:
        self._app = app
        self._max = max_bytes
        self._read_seconds = read_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and not length.isdigit():
            # No way to tell where the body ends: answer, and end the connection.
            await refuse(send, 400, "invalid Content-Length header", CLOSE)
            return
        if length in (None, b"0") and b"transfer-encoding" not in headers:
            # No body (most GETs): nothing to check, nothing to buffer.
            await self._app(scope, receive, send)
            return
        declared = int(length) if length is not None else None
        too_large = f"request body is larger than {self._max} bytes"
        refusal: tuple[int, str] | None = None
        if not _is_json(headers.get(b"content-type", b"")):
            refusal = (415, NOT_JSON)
        elif declared is not None and declared > self._max:
            refusal = (413, too_large)
        body = _Body([], 0, ended=False)
        # Whether a refused body has been read to its end: then the connection can end
        # cleanly. One declared beyond DRAIN_BYTES is not read at all.
        drained = False
        try:
            async with asyncio.timeout(self._read_seconds):
                if refusal is None:
                    body = await self._read(receive)
                    if body.size > self._max:
                        refusal = (413, too_large)
                if refusal is not None and (declared or 0) <= DRAIN_BYTES:
                    drained = body.ended or await _drop(receive, DRAIN_BYTES - body.size)
        except TimeoutError:
            if refusal is None:
                await refuse(send, 408, STALLED, CLOSE)
                return
        except _Disconnected:
            return
        if refusal is None:
            await self._app(scope, self._replay(body.messages, receive), send)
            return
        status, detail = refusal
        if drained:
            await refuse(send, status, detail, CLOSE)
            return
        # A client waiting for `100 Continue` sends nothing more: nothing to drop (and
        # reading now would have the server invite it to send the body).
        expects_continue = headers.get(b"expect", b"").lower() == b"100-continue"
        await _answer_then_linger(
            receive, send, status, detail, linger=body.size > 0 or not expects_continue
        )

    async def _read(self, receive: Receive) -> _Body:
        """The body as it came, until its end or until it outgrows the limit."""
        body = _Body([], 0, ended=False)
        while not body.ended and body.size <= self._max:
            chunk, more = await _next_chunk(receive)
            body.messages.append({"type": "http.request", "body": chunk, "more_body": more})
            body.size += len(chunk)
            body.ended = not more
        return body

    @staticmethod
    def _replay(messages: list[Message], receive: Receive) -> Receive:
        """The route receives exactly what was read, then whatever comes after (the
        disconnect)."""

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        return replay


async def _answer_then_linger(
    receive: Receive, send: Send, status: int, detail: str, *, linger: bool
) -> None:
    """Send the whole answer, drop what the client still sends for LINGER_SECONDS (if
    `linger`), then end the response, and with it the connection."""
    await refuse(send, status, detail, CLOSE, more_body=True)
    if linger:
        with contextlib.suppress(TimeoutError, _Disconnected):
            async with asyncio.timeout(LINGER_SECONDS):
                await _drop(receive, float("inf"))
    await send({"type": "http.response.body", "body": b""})
