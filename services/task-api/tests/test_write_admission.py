"""A write takes its back-pressure slot only once it is ready for the store: after its
body has arrived, and after it holds its task's lease. A client that stalls in the
middle of its body, or a write waiting for another writer of the same task, holds no
slot that other writes need (with three slots, three stalled bodies used to refuse
every other write; under load, with one slot, one did)."""

import asyncio
import json
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pytest
from fastapi import FastAPI
from task_api_fakes import FakePorts

from task_api.lease import task_lease
from task_api.main import create_app
from task_api.settings import Settings

API_KEY = b"test-key"
READ_SECONDS = 0.3


@dataclass
class Exchange:
    """One request driven straight into the ASGI app: its body arrives as the test
    says, and what the app sent back is kept."""

    app: FastAPI
    method: str
    path: str
    chunks: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    sent: list[MutableMapping[str, Any]] = field(default_factory=list)
    expected: int = 0
    received: int = 0
    # Set once the app has read every chunk queued so far.
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, content_length: int) -> None:
        self.expected = content_length
        headers = [
            (b"x-api-key", API_KEY),
            (b"content-type", b"application/json"),
            (b"content-length", str(content_length).encode()),
        ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": self.method,
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        await self.app(scope, self._receive, self._send)

    async def _receive(self) -> dict[str, Any]:
        chunk = await self.chunks.get()
        if chunk is None:
            return {"type": "http.disconnect"}
        self.received += len(chunk)
        if self.chunks.empty():
            self.caught_up.set()
        return {"type": "http.request", "body": chunk, "more_body": self.received < self.expected}

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int | None:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        return starts[0]["status"] if starts else None

    @property
    def headers(self) -> dict[bytes, bytes]:
        [start] = [m for m in self.sent if m["type"] == "http.response.start"]
        return dict(start["headers"])

    def json(self) -> Any:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))


@pytest.fixture
def ports() -> FakePorts:
    return FakePorts()


@pytest.fixture
async def app(ports: FakePorts, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    """task-api under load: one write at a time (the limit the lag steers to, at its
    lowest), a slot waited for HOLD_SECONDS before 503."""
    monkeypatch.setattr("task_api.write_gate.HOLD_SECONDS", 0.2)
    settings = Settings(body_read_timeout_seconds=READ_SECONDS)
    application = create_app(settings, connect=ports.connect)
    async with application.router.lifespan_context(application):
        application.state.runtime.write_limiter.limit = 1
        yield application


async def whole(app: FastAPI, method: str, path: str, body: bytes) -> Exchange:
    exchange = Exchange(app, method, path)
    exchange.chunks.put_nowait(body)
    await asyncio.wait_for(exchange.run(len(body)), 5)
    return exchange


async def test_a_stalled_body_holds_no_write_slot(app: FastAPI, ports: FakePorts) -> None:
    stalled = Exchange(app, "POST", "/tasks")
    stalled.chunks.put_nowait(b"{")  # then nothing: the client stalls
    stalling = asyncio.create_task(stalled.run(content_length=20))
    await asyncio.wait_for(stalled.caught_up.wait(), 1)
    created = [await whole(app, "POST", "/tasks", b'{"title": "Meanwhile"}') for _ in range(3)]
    assert [c.status for c in created] == [201] * 3, [c.sent for c in created]
    assert not stalling.done()
    # The stalled body is given up on: 408, and the connection is not kept.
    await asyncio.wait_for(stalling, READ_SECONDS + 2)
    assert stalled.status == 408
    assert stalled.headers[b"connection"] == b"close"
    assert "did not arrive" in stalled.json()["detail"]
    assert len(ports.state.published) == 3


async def test_a_write_waiting_for_its_tasks_lease_holds_no_write_slot(
    app: FastAPI, ports: FakePorts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("task_api.lease.LEASE_WAIT_SECONDS", 1.0)
    busy = (await whole(app, "POST", "/tasks", b'{"title": "Busy"}')).json()["id"]
    # Another writer holds the task's lease (on another replica, say) for a while.
    async with task_lease(ports.state, UUID(busy)):
        patch = Exchange(app, "PATCH", f"/tasks/{busy}")
        patch.chunks.put_nowait(b'{"priority": 2}')
        waiting = asyncio.create_task(patch.run(content_length=15))
        await asyncio.wait_for(patch.caught_up.wait(), 1)
        other = await whole(app, "POST", "/tasks", b'{"title": "Another task"}')
        assert other.status == 201, other.sent
        assert not waiting.done()
        await asyncio.wait_for(waiting, 5)
        assert patch.status == 409
