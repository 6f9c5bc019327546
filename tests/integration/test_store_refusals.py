"""An outage of the store is answered as one, not mistaken for a lost race: Redis out
of memory refuses writes with an error that state.redis and Dapr report just like a
first-write conflict (INTERNAL, ERR_STATE_SAVE)."""

import subprocess
from collections.abc import AsyncIterator

import httpx
import pytest

from harness.backends import only_on_redis
from harness.stack import Stack

pytestmark = only_on_redis("makes Redis refuse writes (maxmemory 1)")


@pytest.fixture
async def redis_out_of_memory(stack: Stack, task_api: httpx.AsyncClient) -> AsyncIterator[None]:
    def config(*args: str) -> None:
        assert stack.backend.redis is not None
        cli = ["redis-cli", "-p", str(stack.backend.redis.port), "config", "set", *args]
        subprocess.run(cli, check=True, capture_output=True)

    # Index pages in every shard first: a create then writes one with its ETag, which
    # state.redis reports differently from a first write.
    for i in range(48):
        assert (await task_api.post("/tasks", json={"title": f"before {i}"})).status_code == 201
    config("maxmemory-policy", "noeviction")
    config("maxmemory", "1")
    try:
        yield
    finally:
        config("maxmemory", "0")


async def test_a_create_while_redis_is_out_of_memory_gets_503(
    redis_out_of_memory: None, task_api: httpx.AsyncClient
) -> None:
    """It used to spin on the index page's first write, taking the refusal for another
    writer's, and answer 409 "too many concurrent writers" after two seconds."""
    for _ in range(8):
        response = await task_api.post("/tasks", json={"title": "No room"})
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"]
