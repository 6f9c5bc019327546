"""Request bodies on the real task-api, over raw connections: clients that stall in the
middle of a body hold no write slot (every other write still answers 201, and the
stalled ones get 408), and a body that is too large gets its whole 413 once it has been
read, after which the connection ends cleanly (FIN, not a reset: a reset breaks Tilt's
port-forward) and the next connection is served."""

import asyncio
import json
import re
from urllib.parse import urlsplit

import httpx

from harness.stack import RunningStack, Stack

MIB = 1024 * 1024
# task-api's TASK_API_BODY_READ_TIMEOUT_SECONDS, as the stack runs it (the default).
BODY_READ_TIMEOUT = 10.0
TOO_LARGE = {"detail": "request body is larger than 65536 bytes"}


def post_head(stack: RunningStack, length: int, *extra: str) -> bytes:
    host = urlsplit(stack.task_api.url).netloc
    lines = [
        "POST /tasks HTTP/1.1",
        f"Host: {host}",
        f"X-API-Key: {stack.api_key}",
        "Content-Type: application/json",
        f"Content-Length: {length}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def connect(stack: RunningStack) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    address = urlsplit(stack.task_api.url)
    assert address.hostname is not None
    return await asyncio.open_connection(address.hostname, address.port or 80)


async def until_closed(reader: asyncio.StreamReader) -> tuple[bytes, str]:
    """Everything the server sent, and how the connection ended: `closed` (FIN) or
    `reset` (RST)."""
    data = b""
    try:
        while chunk := await reader.read(65536):
            data += chunk
    except ConnectionResetError:
        return data, "reset"
    return data, "closed"


def answer(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, content = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split(" ")[1]), headers, content


async def write_limit(stack: RunningStack) -> int:
    """How many writes task-api runs at once now (its `write_limit` metric)."""
    if not isinstance(stack, Stack):
        return 3
    async with httpx.AsyncClient(timeout=10) as client:
        metrics = (await client.get(stack.task_api.metrics_url)).text
    found = re.search(r"^write_limit ([0-9.e+]+)$", metrics, re.MULTILINE)
    assert found, "task-api has no write_limit metric"
    return int(float(found.group(1)))


async def test_stalled_bodies_hold_no_write_slot(
    stack: RunningStack, task_api: httpx.AsyncClient
) -> None:
    # As many stalled clients as writes may run at once (three, unless the limit grew):
    # when a stalled body held a slot, they refused every other write with 503.
    stalled = [await connect(stack) for _ in range(max(3, await write_limit(stack)))]
    try:
        for _, writer in stalled:
            writer.write(post_head(stack, 100) + b"{")
            await writer.drain()
        writes = await asyncio.gather(
            *(
                task_api.post("/tasks", json={"title": f"Beside a stalled body {i}"})
                for i in range(6)
            )
        )
        assert [w.status_code for w in writes] == [201] * 6, [w.text for w in writes]
        ends = await asyncio.wait_for(
            asyncio.gather(*(until_closed(reader) for reader, _ in stalled)),
            BODY_READ_TIMEOUT + 15,
        )
    finally:
        for _, writer in stalled:
            writer.close()
    for data, end in ends:
        status, headers, content = answer(data)
        assert (status, headers.get("connection")) == (408, "close"), data[:300]
        assert json.loads(content) == {"detail": "the request body did not arrive in time"}
        assert end == "closed"


async def test_a_2_mib_body_gets_its_413_and_the_connection_ends_cleanly(
    stack: RunningStack, task_api: httpx.AsyncClient
) -> None:
    body = b'{"title": "' + b"x" * (2 * MIB) + b'"}'
    reader, writer = await connect(stack)
    try:
        writer.write(post_head(stack, len(body)) + body)
        await writer.drain()
        data, end = await asyncio.wait_for(until_closed(reader), 30)
    finally:
        writer.close()
    status, headers, content = answer(data)
    assert (status, headers.get("connection")) == (413, "close"), data[:300]
    assert json.loads(content) == TOO_LARGE
    assert end == "closed", "the connection was reset"
    after = await task_api.post("/tasks", json={"title": "After a 2 MiB body"})
    assert after.status_code == 201, after.text


async def test_a_client_waiting_for_100_continue_is_refused_before_it_sends(
    stack: RunningStack, task_api: httpx.AsyncClient
) -> None:
    """Beyond what the server drains (a few MiB), the answer comes at once: a client
    that waits for `100 Continue` (curl does, for large bodies) never sends the body."""
    reader, writer = await connect(stack)
    try:
        writer.write(post_head(stack, 64 * MIB, "Expect: 100-continue"))
        await writer.drain()
        data, end = await asyncio.wait_for(until_closed(reader), 30)
    finally:
        writer.close()
    status, headers, content = answer(data)
    assert (status, headers.get("connection")) == (413, "close"), data[:300]
    assert json.loads(content) == TOO_LARGE
    assert end == "closed", "the connection was reset"
    after = await task_api.post("/tasks", json={"title": "After a refused 64 MiB"})
    assert after.status_code == 201, after.text
