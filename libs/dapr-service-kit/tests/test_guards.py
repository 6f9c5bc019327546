"""The guards both services put in front of their routes."""

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dapr_service_kit.api_key import ApiKeyGuard, KeyPolicy, document_api_key
from dapr_service_kit.errors import InfrastructureUnavailable
from dapr_service_kit.secrets import wait_for_secret
from dapr_service_kit.sidecar_auth import FromSidecar

TOKEN = "token"
POLICY = KeyPolicy(sidecar_paths=frozenset({"/notify"}))


def app(app_api_token: str | None) -> FastAPI:
    api = FastAPI()
    api.state.settings = type("Settings", (), {"app_api_token": app_api_token})()

    @api.get("/items")
    async def items() -> list[str]:
        return ["secret"]

    @api.post("/notify", dependencies=[FromSidecar])
    async def notify() -> str:
        return "done"

    api.add_middleware(ApiKeyGuard, expected=lambda _: b"key", policy=POLICY)
    document_api_key(api, POLICY)
    return api


def test_the_policy_denies_by_default() -> None:
    assert POLICY.protects("/items")
    assert POLICY.protects("/anything-added-later")
    assert POLICY.protects("/notify/more"), "a sidecar path is exact, not a prefix"
    for open_path in ("/health", "/ready", "/openapi.json", "/docs", "/notify", "/events/x"):
        assert not POLICY.protects(open_path), open_path


def test_the_key_guard_answers_401_with_one_body() -> None:
    client = TestClient(app(TOKEN))
    for headers in ({}, {"X-API-Key": ""}, {"X-API-Key": "ke"}, {"X-API-Key": "key2"}):
        response = client.get("/items", headers=headers)
        assert response.status_code == 401
        assert response.json() == {"detail": "missing or invalid X-API-Key"}
    assert client.get("/items", headers={"X-API-Key": "key"}).json() == ["secret"]


def test_sidecar_routes_take_the_app_token_not_the_key() -> None:
    client = TestClient(app(TOKEN))
    assert client.post("/notify", headers={"X-API-Key": "key"}).status_code == 401
    assert client.post("/notify", headers={"dapr-api-token": "token"}).status_code == 200
    nobody = TestClient(app(app_api_token=None))
    assert nobody.post("/notify", headers={"dapr-api-token": ""}).status_code == 401


def test_the_openapi_document_marks_exactly_the_protected_operations() -> None:
    paths = TestClient(app(TOKEN)).get("/openapi.json").json()["paths"]
    assert paths["/items"]["get"]["security"] == [{"ApiKey": []}]
    assert "security" not in paths["/notify"]["post"]


async def test_a_secret_store_that_never_answers_is_reported() -> None:
    calls = 0

    async def get_secret(_: str) -> str:
        nonlocal calls
        calls += 1
        raise InfrastructureUnavailable("secret store down")

    with pytest.raises(InfrastructureUnavailable):
        await wait_for_secret(get_secret, "k", wait_seconds=0)
    assert calls == 1
