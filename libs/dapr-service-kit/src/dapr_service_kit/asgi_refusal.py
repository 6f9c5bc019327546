"""The JSON error answer of the plain ASGI guards, sent before any route runs."""

import json
from collections.abc import Sequence

from starlette.types import Send


async def refuse(
    send: Send,
    status: int,
    detail: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
    *,
    more_body: bool = False,
) -> None:
    """Send the whole answer; with `more_body` the response stays open (its caller ends
    it later with an empty body message)."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": more_body})
