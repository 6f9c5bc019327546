"""Locked by default, on the real processes: keys, tokens, listening addresses."""

import subprocess
import uuid

import httpx
import pytest

from harness.polling import eventually
from harness.stack import Stack


async def test_notify_refuses_a_direct_call_without_the_app_token(stack: Stack) -> None:
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "task.completed",
        "task_id": str(uuid.uuid4()),
        "title": "forged",
        "status": "completed",
    }
    async with httpx.AsyncClient(base_url=stack.notification_service.url) as client:
        for headers in ({}, {"dapr-api-token": "guess"}):
            response = await client.post("/notify", json={"event": event}, headers=headers)
            assert response.status_code == 401
        events = await client.post("/events/task-events", json={"data": event})
        assert events.status_code == 401


async def test_the_sidecar_api_needs_the_dapr_api_token(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.task_api.sidecar_url) as sidecar:
        refused = await sidecar.get("/v1.0/state/statestore/anything")
        assert refused.status_code == 401
        allowed = await sidecar.get(
            "/v1.0/state/statestore/anything", headers={"dapr-api-token": stack.dapr_api_token}
        )
        assert allowed.status_code == 204


@pytest.mark.parametrize(
    ("app", "readable"),
    [
        ("task-api", {"task-api-key", "task-api-cursor-key"}),
        ("notification-service", {"task-api-key"}),
    ],
)
async def test_the_secret_store_hands_out_only_each_apps_own_secrets(
    stack: Stack, app: str, readable: set[str]
) -> None:
    """Both apps check the API key (task-api on /tasks, notification-service on its
    feed); only task-api signs list cursors; the tokens in the same file stay hidden from
    both. One Configuration per sidecar makes the difference."""
    service = stack.task_api if app == "task-api" else stack.notification_service
    headers = {"dapr-api-token": stack.dapr_api_token}
    async with httpx.AsyncClient(base_url=service.sidecar_url, headers=headers) as sidecar:
        key = await sidecar.get("/v1.0/secrets/secretstore/task-api-key")
        assert key.json() == {"task-api-key": stack.api_key}
        hidden = {"dapr-api-token", "app-api-token", "task-api-cursor-key"} - readable
        for name in hidden:
            assert (await sidecar.get(f"/v1.0/secrets/secretstore/{name}")).status_code == 403
        bulk = await sidecar.get("/v1.0/secrets/secretstore/bulk")
        assert set(bulk.json()) == readable


async def test_keys_and_tokens_never_reach_a_log(stack: Stack, task_api: httpx.AsyncClient) -> None:
    await task_api.get("/tasks", headers={"X-API-Key": "wrong"})
    await task_api.post("/tasks", json={"title": "log me"})
    for process in stack.processes:
        text = process.log_path.read_text()
        for secret in (stack.api_key, stack.dapr_api_token, stack.app_api_token):
            assert secret not in text, process.name


def test_everything_listens_on_loopback_only(stack: Stack) -> None:
    listening = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    pids = {p.pid for p in stack.processes}
    ours = [line for line in listening.splitlines() if any(f"pid={pid}," in line for pid in pids)]
    assert ours, listening
    for line in ours:
        local_address = line.split()[3]
        assert local_address.startswith("127.0.0.1:"), line


async def test_no_key_or_token_ever_reaches_a_log(stack: Stack) -> None:
    """After the traffic that could leak one (a wrong key, the right key, a completion
    that makes task-api invoke notify with the tokens, the sidecars' own calls), no
    process of the stack has logged the API key or either sidecar token."""
    secrets = {
        "API key": stack.api_key,
        "DAPR_API_TOKEN": stack.dapr_api_token,
        "APP_API_TOKEN": stack.app_api_token,
    }
    async with httpx.AsyncClient(base_url=stack.task_api.url, timeout=30) as client:
        assert (await client.get("/tasks", headers={"X-API-Key": "wrong"})).status_code == 401
        headers = {"X-API-Key": stack.api_key}
        task = (await client.post("/tasks", json={"title": "Quiet"}, headers=headers)).json()
        await client.put(f"/tasks/{task['id']}/status?status=completed", headers=headers)

    async def delivered() -> list[str]:
        return stack.app_log_lines("task-api", f"notify for task {task['id']} delivered")

    await eventually(delivered, within=30, what="the completion's notify")
    for process in stack.processes:
        log = process.log_path.read_text()
        leaked = [name for name, value in secrets.items() if value in log]
        assert not leaked, f"{process.name} logged the {leaked}"
