"""A task lease whose key lost its TTL frees its task all the same (issue 26, item 6).

state.redis writes a key and sets its TTL in two commands; when the second is lost
(daprd killed, a deadline, a reset) the key stays. The test stores such a lease itself,
through task-api's sidecar and without `ttlInSeconds`, as a holder that died would have
left it. Every PATCH of the task used to answer 409 for as long as the key stayed."""

import time

import httpx
import pytest

from harness.deployed import is_external
from harness.polling import eventually
from harness.stack import Stack

# How long the stored lease has to run: longer than one PATCH waits for a lease (2 s).
LEASE_LEFT_SECONDS = 5.0

pytestmark = pytest.mark.skipif(is_external(), reason="writes to a sidecar of its own stack")


async def test_a_lease_stored_without_its_ttl_frees_the_task_at_its_own_expiry(
    stack: Stack, task_api: httpx.AsyncClient
) -> None:
    created = await task_api.post("/tasks", json={"title": "lease without a TTL"})
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]

    expires_at = time.time() + LEASE_LEFT_SECONDS
    headers = {"dapr-api-token": stack.dapr_api_token}
    async with httpx.AsyncClient(base_url=stack.task_api.sidecar_url, headers=headers) as sidecar:
        # As the app writes a lease (through its own sidecar, so with the same app-id
        # prefix; first-write, which state.redis marks on the key), without the TTL.
        stored = await sidecar.post(
            "/v1.0/state/statestore",
            json=[
                {
                    "key": f"lease:task:{task_id}",
                    "value": {"owner": "a holder that died", "expires_at": expires_at},
                    "options": {"concurrency": "first-write"},
                }
            ],
        )
        assert stored.status_code == 204, stored.text

    # The app finds the lease and honours it while it runs...
    refused = await task_api.patch(f"/tasks/{task_id}", json={"title": "too soon"})
    assert refused.status_code == 409, refused.text
    assert time.time() < expires_at, "the first PATCH came too late to show the lease held"

    # ... and takes it over once it has expired, although the key never will.
    async def patched() -> httpx.Response | None:
        response = await task_api.patch(f"/tasks/{task_id}", json={"title": "after the expiry"})
        return response if response.status_code == 200 else None

    response = await eventually(patched, within=30, what="a PATCH after the lease's expiry")
    assert response.json()["title"] == "after the expiry"
    assert time.time() >= expires_at
