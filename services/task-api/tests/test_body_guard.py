"""The body guard on its own: what it reads of a request body, and when it answers.

A refused body is read to its end before the answer (within a bound), and the answer
ends the connection: closing a connection with unread bytes makes the kernel reset it,
which loses the answer and breaks Tilt's port-forward. The real server's side of this
(FIN, not RST) is tested on the real stack (tests/integration/test_request_bodies.py)."""

import asyncio
import json
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from task_api.body_guard import DRAIN_BYTES, JsonBodyGuard

MAX = 64 * 1024
CHUNK = 64 * 1024


@dataclass
class Client:
    """A request's body, in chunks, and what the guard and the app did with it, in
    order: `read <n>` for each chunk received, `answer <status>` for the response."""

    chunks: list[bytes]
    stall_after: int | None = None  # chunks; then the client sends nothing more
    gone_after: int | None = None  # chunks; then the client disconnects
    log: list[str] = field(default_factory=list)
    sent: list[MutableMapping[str, Any]] = field(default_factory=list)
    app_body: bytes | None = None

    async def receive(self) -> dict[str, Any]:
        taken = sum(1 for entry in self.log if entry.startswith("read"))
        if taken == self.stall_after:
            await asyncio.Event().wait()
        if taken in (len(self.chunks), self.gone_after):
            return {"type": "http.disconnect"}
        self.log.append(f"read {taken}")
        more = taken + 1 < len(self.chunks)
        return {"type": "http.request", "body": self.chunks[taken], "more_body": more}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.log.append(f"answer {message['status']}")
        self.sent.append(message)

    async def app(self, _: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.app_body = body
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    @property
    def reads(self) -> int:
        return sum(1 for entry in self.log if entry.startswith("read"))

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])

    @property
    def detail(self) -> str:
        body = b"".join(m.get("body", b"") for m in self.sent[1:])
        return str(json.loads(body)["detail"])


def request(
    client: Client, *, length: int | None, content_type: bytes = b"application/json", **more: bytes
) -> Scope:
    headers = [(b"content-type", content_type), *((k.encode(), v) for k, v in more.items())]
    if length is None:
        headers.append((b"transfer-encoding", b"chunked"))
    else:
        headers.append((b"content-length", str(length).encode()))
    return {"type": "http", "method": "POST", "path": "/tasks", "headers": headers}


async def guarded(client: Client, scope: Scope, read_timeout: float = 5.0) -> None:
    guard = JsonBodyGuard(client.app, max_bytes=MAX, read_timeout_seconds=read_timeout)
    await asyncio.wait_for(guard(scope, client.receive, client.send), 10)


def body_of(size: int) -> list[bytes]:
    return [b"x" * min(CHUNK, size - at) for at in range(0, size, CHUNK)]


async def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    chunks = [b'{"title": ', b'"x"}']
    client = Client(chunks)
    await guarded(client, request(client, length=14))
    assert client.app_body == b'{"title": "x"}'
    assert client.log == ["read 0", "read 1", "answer 201"]


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_2_mib_body_is_read_to_its_end_then_refused_closing_the_connection(
    declared: bool,
) -> None:
    size = 2 * 1024 * 1024
    client = Client(body_of(size))
    await guarded(client, request(client, length=size if declared else None))
    assert client.log[-1] == "answer 413"
    assert client.reads == len(client.chunks), "answered before the body was read"
    assert client.headers[b"connection"] == b"close"
    assert client.detail == f"request body is larger than {MAX} bytes"
    assert client.app_body is None


async def test_a_body_that_is_not_json_is_read_to_its_end_then_refused() -> None:
    client = Client([b"a,b\n", b"c,d\n"])
    await guarded(client, request(client, length=8, content_type=b"text/csv"))
    assert client.log == ["read 0", "read 1", "answer 415"]
    assert client.headers[b"connection"] == b"close"


async def test_a_body_beyond_the_drain_bound_is_answered_at_once_then_drained_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("task_api.body_guard.LINGER_SECONDS", 0.2)
    size = DRAIN_BYTES + 1
    client = Client(body_of(size), stall_after=3)  # a client slower than the linger
    await guarded(client, request(client, length=size))
    assert client.log == ["answer 413", "read 0", "read 1", "read 2"]
    assert client.headers[b"connection"] == b"close"
    assert client.detail == f"request body is larger than {MAX} bytes"
    assert client.sent[-1] == {"type": "http.response.body", "body": b""}


async def test_a_client_waiting_for_100_continue_is_refused_without_reading() -> None:
    """Reading would have the server send `100 Continue`, inviting the body."""
    size = DRAIN_BYTES + 1
    client = Client(body_of(size))
    await guarded(client, request(client, length=size, expect=b"100-continue"))
    assert client.log == ["answer 413"]
    assert client.headers[b"connection"] == b"close"


async def test_a_stalled_body_gets_408_and_the_connection_ends() -> None:
    client = Client([b'{"ti', b'tle": "x"}'], stall_after=1)
    await guarded(client, request(client, length=14), read_timeout=0.1)
    assert client.log == ["read 0", "answer 408"]
    assert client.headers[b"connection"] == b"close"
    assert client.detail == "the request body did not arrive in time"
    assert client.app_body is None


async def test_a_client_gone_mid_body_gets_no_answer() -> None:
    client = Client([b'{"ti', b'tle": "x"}'], gone_after=1)
    await guarded(client, request(client, length=14))
    assert client.sent == []
    assert client.app_body is None
