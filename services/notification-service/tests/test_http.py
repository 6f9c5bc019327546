"""notification-service's routes on an in-memory store."""

from fastapi.testclient import TestClient
from notification_fakes import FakePorts, task_event

from dapr_service_kit.testing import MemoryStateStore
from notification_service.main import create_app
from notification_service.settings import Settings


def test_notify_records_once_and_acknowledges_duplicates(client: TestClient) -> None:
    body = {"event": task_event()}
    assert client.post("/notify", json=body).json() == {"status": "notified"}
    assert client.post("/notify", json=body).json() == {"status": "duplicate"}
    [item] = client.get("/notifications").json()["items"]
    assert item["kind"] == "notify"
    assert item["message"].startswith("NOTIFY task.completed task=")


def test_notify_refuses_a_body_that_is_not_a_contract_model(client: TestClient) -> None:
    assert client.post("/notify", json={"event": {"title": "x"}}).status_code == 422
    assert client.post("/notify", json=[1, 2]).status_code == 422
    assert client.get("/notifications").json()["items"] == []


def test_task_events_are_recorded_as_activity(client: TestClient) -> None:
    data = task_event(event_type="task.created", status="pending", added_later={"x": 1})
    response = client.post("/events/task-events", json={"id": "ce-1", "data": data})
    assert response.json() == {"status": "SUCCESS"}
    [item] = client.get("/notifications").json()["items"]
    assert (item["kind"], item["event_type"]) == ("activity", "task.created")


def test_unknown_event_types_are_acknowledged_not_recorded(client: TestClient) -> None:
    data = task_event(event_type="task.archived")
    assert client.post("/events/task-events", json={"data": data}).json() == {"status": "SUCCESS"}
    assert client.get("/notifications").json()["items"] == []


def test_undecodable_events_are_dropped_to_the_dead_letter_topic(client: TestClient) -> None:
    for body in ({"data": "not an object"}, {"data": {"event_type": "task.created"}}, {}):
        assert client.post("/events/task-events", json=body).json() == {"status": "DROP"}
    garbage = client.post(
        "/events/task-events", content=b"\xff", headers={"Content-Type": "application/json"}
    )
    assert garbage.json() == {"status": "DROP"}


def test_a_newer_schema_version_is_still_read(client: TestClient) -> None:
    data = task_event(event_type="task.created", schema_version=2)
    assert client.post("/events/task-events", json={"data": data}).json() == {"status": "SUCCESS"}
    assert len(client.get("/notifications").json()["items"]) == 1


def test_dead_letters_are_recorded(client: TestClient) -> None:
    response = client.post("/events/dead-letters", json={"id": "ce-9", "type": "x", "data": "junk"})
    assert response.json() == {"status": "SUCCESS"}
    [item] = client.get("/notifications").json()["items"]
    assert item["kind"] == "dead-letter"
    assert item["event_id"] == "ce-9"


def test_store_outage_means_retry_and_503(client: TestClient, state: MemoryStateStore) -> None:
    state.down = True
    data = task_event(event_type="task.created")
    assert client.post("/events/task-events", json={"data": data}).json() == {"status": "RETRY"}
    response = client.post("/notify", json={"event": task_event()})
    assert response.status_code == 503
    assert "Retry-After" in response.headers
    assert client.get("/ready").status_code == 503
    assert client.get("/health").status_code == 200


def test_notifications_limit_is_bounded(client: TestClient) -> None:
    assert client.get("/notifications", params={"limit": 0}).status_code == 422
    assert client.get("/notifications", params={"limit": 201}).status_code == 422


def test_only_the_sidecar_may_call_notify_and_the_subscriptions(client: TestClient) -> None:
    body = {"event": task_event()}
    for headers in ({"dapr-api-token": ""}, {"dapr-api-token": "guess"}):
        for path, payload in (("/notify", body), ("/events/task-events", {"data": body["event"]})):
            response = client.post(path, json=payload, headers=headers)
            assert response.status_code == 401, path
    assert client.get("/notifications").json()["items"] == []


def test_without_a_configured_token_nobody_is_the_sidecar(ports: FakePorts) -> None:
    with TestClient(create_app(Settings(), connect=ports.connect)) as client:
        response = client.post(
            "/notify", json={"event": task_event()}, headers={"dapr-api-token": ""}
        )
        assert response.status_code == 401


def test_cases_schemathesis_found(client: TestClient) -> None:
    # A number is not an ISO 8601 timestamp, though Pydantic would read it as one.
    assert client.post("/notify", json={"event": task_event(timestamp=0)}).status_code == 422
    # A body that is not JSON gets the documented 400.
    garbage = client.post(
        "/notify", content=b'\xd3|[\xe36"Y', headers={"Content-Type": "application/json"}
    )
    assert garbage.status_code == 400
    assert "400" in client.get("/openapi.json").json()["paths"]["/notify"]["post"]["responses"]
