"""Hand-written hostile input against the real task-api: each gets a clear 4xx, and
nothing changes."""

import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from harness.stack import Stack, list_all_tasks

UNICODE_TITLES = [
    "Zürich — naïve café",
    "日本語のタスク",
    "emoji 😀👩‍👩‍👧‍👦 flags 🇫🇷",
    "e\u0301 combining, \u202eright-to-left override",
    "zero\u200bwidth and \ufeffBOM",
    "tab\tand a NUL \x00 inside",
    "x" * 200,
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 " * 20,  # noqa: RUF001 - look-alike letters are the point
]


@pytest.fixture
async def unchanged(task_api: httpx.AsyncClient) -> AsyncIterator[None]:
    """The test must leave every task as it found it."""
    before = await list_all_tasks(task_api)
    yield
    assert await list_all_tasks(task_api) == before


@pytest.mark.parametrize("title", UNICODE_TITLES)
async def test_unicode_titles_are_kept_exactly(task_api: httpx.AsyncClient, title: str) -> None:
    created = (await task_api.post("/tasks", json={"title": title})).json()
    assert created["title"] == title
    assert (await task_api.get(f"/tasks/{created['id']}")).json()["title"] == title


@pytest.mark.usefixtures("unchanged")
async def test_hostile_requests_get_a_clear_4xx(stack: Stack, task_api: httpx.AsyncClient) -> None:
    task_id = (await task_api.get("/tasks", params={"limit": 1})).json()["items"][0]["id"]
    json_header = {"Content-Type": "application/json"}
    plain = {"Content-Type": "text/plain"}
    forged = {"If-Match": '"forged"'}
    as_json: dict[str, Any] = {"headers": json_header}
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("POST", "/tasks", {"content": b'{"title": "x"', "headers": json_header}, 422),
        ("POST", "/tasks", {"content": b"\xff\xfe", "headers": json_header}, 422),
        ("POST", "/tasks", {"content": b'{"title": "x"}', "headers": plain}, 415),
        ("POST", "/tasks", {"content": b"[" * 100_000, "headers": json_header}, 413),
        ("POST", "/tasks", {"json": {"title": "x", "id": "chosen-by-client"}}, 422),
        ("POST", "/tasks", {"json": {"title": ["x"]}}, 422),
        ("POST", "/tasks", {"json": {"title": "x", "priority": 1e308}}, 422),
        ("POST", "/tasks", {"json": {"title": "x" * 201}}, 422),
        # A lone UTF-16 surrogate escape: JSON syntax, but no character.
        ("POST", "/tasks", {"content": rb'{"title": "a\ud800"}', "headers": json_header}, 422),
        ("PATCH", f"/tasks/{task_id}", {"content": rb'{"title": "\udfff"}', **as_json}, 422),
        ("PUT", f"/tasks/{task_id}/status", {"content": rb'{"status": "\ud83d"}', **as_json}, 422),
        ("GET", "/tasks/not-a-uuid", {}, 422),
        ("GET", "/tasks/../../etc/passwd", {}, 404),
        ("GET", f"/tasks/{task_id}%00", {}, 422),
        ("PATCH", f"/tasks/{task_id}", {"json": {"status": "completed"}}, 422),
        ("PATCH", f"/tasks/{task_id}", {"json": {"title": "x"}, "headers": forged}, 412),
        ("PUT", f"/tasks/{task_id}/status", {"params": {"status": "done"}}, 422),
        ("DELETE", f"/tasks/{task_id}", {"headers": {"If-Match": "W/\"forged\""}}, 412),
        ("GET", "/tasks", {"params": {"limit": 10**30}}, 422),
        ("GET", "/tasks", {"params": {"limit": -1}}, 422),
        ("GET", "/tasks", {"params": {"cursor": "MjAyNi0xMS0yOHxub3QtYS11dWlk"}}, 400),
        ("GET", "/tasks", {"params": {"cursor": "%%%"}}, 400),
        ("GET", "/tasks", {"params": {"cursor": "A" * 600}}, 422),
        ("GET", "/tasks", {"headers": {"X-API-Key": stack.api_key + "x"}}, 401),
        ("GET", "/tasks", {"headers": {"X-API-Key": "ünïcode".encode()}}, 401),
    ]  # fmt: skip
    for method, path, options, expected in cases:
        response = await task_api.request(method, path, **options)
        assert response.status_code == expected, (method, path, options, response.text)
        assert "detail" in response.json(), response.text
        assert stack.api_key not in response.text


@pytest.mark.usefixtures("unchanged")
def test_header_injection_is_refused_by_the_server(stack: Stack) -> None:
    # A raw request whose header value smuggles a line break and a second request.
    smuggled = (
        "POST /tasks HTTP/1.1\r\nHost: x\r\n"
        f"X-API-Key: {stack.api_key}\nContent-Type: application/json\r\n"
        "Content-Length: 15\r\n\r\n"
        '{"title": "x"}\n'
    ).encode()
    with socket.create_connection(("127.0.0.1", stack.task_api.app_port), timeout=5) as sock:
        sock.sendall(smuggled)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]
