"""GET /notifications shows task titles, ids and priorities: it takes task-api's key,
with task-api's answer. The probes stay open; `notify` stays the sidecar's."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from notification_fakes import API_KEY, SIDECAR_TOKEN, FakePorts, task_event

from notification_service.main import create_app
from notification_service.settings import Settings

REFUSAL = {"detail": "missing or invalid X-API-Key"}


def notify_body() -> dict[str, object]:
    return {"event": task_event(title="Secret plans", priority=5)}


@pytest.fixture
def anonymous(ports: FakePorts) -> Iterator[TestClient]:
    """A client with no credential at all; one notification is already recorded."""
    app = create_app(Settings(app_api_token=SIDECAR_TOKEN), connect=ports.connect)
    with TestClient(app) as client:
        recorded = client.post(
            "/notify", json=notify_body(), headers={"dapr-api-token": SIDECAR_TOKEN}
        )
        assert recorded.status_code == 200, recorded.text
        yield client


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": ""}, {"X-API-Key": "guess"}])
def test_the_feed_needs_the_api_key(anonymous: TestClient, headers: dict[str, str]) -> None:
    response = anonymous.get("/notifications", headers=headers)
    assert response.status_code == 401
    assert response.json() == REFUSAL
    assert "Secret plans" not in response.text


def test_the_feed_answers_with_the_key(anonymous: TestClient) -> None:
    response = anonymous.get("/notifications", headers={"X-API-Key": API_KEY})
    assert response.status_code == 200
    [item] = response.json()["items"]
    assert item["title"] == "Secret plans"


def test_the_probes_and_the_description_stay_open(anonymous: TestClient) -> None:
    for path in ("/health", "/ready", "/openapi.json", "/docs"):
        assert anonymous.get(path).status_code == 200, path


def test_paths_outside_the_public_list_need_the_key(anonymous: TestClient) -> None:
    """Deny by default: a route added later is protected without anyone remembering to."""
    for path in ("/nothing-here", "/notifications/", "//notifications", "/notify/x"):
        response = anonymous.get(path)
        assert (response.status_code, response.json()) == (401, REFUSAL), path


def test_behind_a_root_path_the_feed_still_needs_the_key(ports: FakePorts) -> None:
    app = create_app(Settings(app_api_token=SIDECAR_TOKEN), connect=ports.connect)
    with TestClient(app, root_path="/ns") as client:
        for path in ("/notifications", "/ns/notifications"):
            assert client.get(path).status_code == 401, path
        assert client.get("/notifications", headers={"X-API-Key": API_KEY}).status_code == 200


def test_notify_is_the_sidecars_not_the_key_holders(anonymous: TestClient) -> None:
    """The sidecar never holds the API key; a key holder is not the sidecar."""
    with_key = anonymous.post("/notify", json=notify_body(), headers={"X-API-Key": API_KEY})
    assert with_key.status_code == 401
    assert anonymous.post("/notify", json=notify_body()).status_code == 401
    from_sidecar = anonymous.post(
        "/notify", json=notify_body(), headers={"dapr-api-token": SIDECAR_TOKEN}
    )
    assert from_sidecar.status_code == 200


def test_the_openapi_document_names_the_key_where_it_is_needed(anonymous: TestClient) -> None:
    document = anonymous.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The API key (secret `task-api-key`)",
    }
    feed = document["paths"]["/notifications"]["get"]
    assert feed["security"] == [{"ApiKey": []}]
    assert "401" in feed["responses"]
    for path in ("/notify", "/health", "/ready"):
        for operation in document["paths"][path].values():
            assert "security" not in operation, path


def test_the_key_is_read_once_the_secret_store_answers() -> None:
    """The app may be up before its sidecar has loaded the secret store."""
    ports = FakePorts()
    ports.secrets.unavailable_calls = 1
    with TestClient(create_app(Settings(), connect=ports.connect)) as client:
        assert client.get("/notifications", headers={"X-API-Key": API_KEY}).status_code == 200
        assert client.get("/notifications", headers={"X-API-Key": "x"}).status_code == 401
