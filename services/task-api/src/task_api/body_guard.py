"""Request bodies are JSON and at most a size limit, checked before any route sees
them: 415 for another media type, 413 for too many bytes."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dapr_service_kit.asgi_refusal import refuse


def _is_json(content_type: bytes) -> bool:
    media_type = content_type.split(b";")[0].strip().lower()
    return media_type == b"application/json" or media_type.endswith(b"+json")


class JsonBodyGuard:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        too_large = f"request body is larger than {self._max} bytes"
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"0")
        if not length.isdigit():
            await refuse(send, 400, "invalid Content-Length header")
            return
        if length == b"0" and b"transfer-encoding" not in headers:
            # No body (most GETs): nothing to check, nothing to buffer.
            await self._app(scope, receive, send)
            return
        if not _is_json(headers.get(b"content-type", b"")):
            await refuse(send, 415, "request bodies must be application/json")
            return
        if int(length) > self._max:
            await refuse(send, 413, too_large)
            return
        # Read the (bounded) body here, so a chunked body over the limit is refused too,
        # then hand the route exactly what was received.
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self._max:
                await refuse(send, 413, too_large)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self._app(scope, replay, send)
