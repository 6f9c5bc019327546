"""The HTTP contract of task-api on in-memory ports."""

from uuid import uuid4

import pytest
from fastapi.testclient import TestClient
from task_api_fakes import FakePorts

from task_api.main import create_app
from task_api.settings import Settings


def create(client: TestClient, **body: object) -> dict[str, object]:
    response = client.post("/tasks", json={"title": "Write the spec", **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_every_tasks_route_needs_the_api_key(client: TestClient) -> None:
    task_id = create(client)["id"]
    calls = [
        ("POST", "/tasks"),
        ("GET", "/tasks"),
        ("GET", f"/tasks/{task_id}"),
        ("PATCH", f"/tasks/{task_id}"),
        ("PUT", f"/tasks/{task_id}/status?status=completed"),
        ("DELETE", f"/tasks/{task_id}"),
    ]
    for method, path in calls:
        for headers in ({"X-API-Key": ""}, {"X-API-Key": "wrong"}):
            response = client.request(method, path, headers=headers, json={"title": "x"})
            assert response.status_code == 401, (method, path)
            assert response.json() == {"detail": "missing or invalid X-API-Key"}
    assert client.get(f"/tasks/{task_id}").json()["title"] == "Write the spec"


def test_create_answers_201_with_location_and_etag(client: TestClient) -> None:
    response = client.post("/tasks", json={"title": "T", "priority": 5})
    task = response.json()
    assert response.status_code == 201
    assert response.headers["Location"] == f"/tasks/{task['id']}"
    assert response.headers["ETag"].startswith('"')
    assert client.get(f"/tasks/{task['id']}").headers["ETag"] == response.headers["ETag"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "T", "priority": 6}, "priority"),
        ({"title": "T", "priority": 0}, "priority"),
        ({"title": "T", "description": "d" * 2001}, "description"),
        ({"title": "T", "status": "completed"}, "status"),
        ({}, "title"),
    ],
)
def test_invalid_bodies_get_422_naming_the_field(
    client: TestClient, ports: FakePorts, body: dict[str, object], field: str
) -> None:
    response = client.post("/tasks", json=body)
    assert response.status_code == 422
    assert field in str(response.json()["detail"])
    assert ports.state.published == []


def test_a_lone_surrogate_gets_422_on_every_write_route(
    client: TestClient, ports: FakePorts
) -> None:
    """JSON allows a lone UTF-16 surrogate escape; it is no character. The 422 that
    refuses it echoes it as the escape it came as (encoding it as UTF-8 failed: 500)."""
    task = create(client)
    task_id, published = task["id"], len(ports.state.published)
    json_body = {"Content-Type": "application/json"}
    for method, path, raw in [
        ("POST", "/tasks", rb'{"title": "a\ud800b"}'),
        ("PATCH", f"/tasks/{task_id}", rb'{"description": "\udfff"}'),
        ("PUT", f"/tasks/{task_id}/status", rb'{"status": "\ud83d"}'),
    ]:
        response = client.request(method, path, content=raw, headers=json_body)
        assert response.status_code == 422, (method, response.text)
        [error] = response.json()["detail"]
        assert "surrogate" in error["msg"] or error["type"] == "enum", error
        assert "\\ud" in error["input"], error
    assert len(ports.state.published) == published
    assert client.get(f"/tasks/{task_id}").json() == task


def test_a_body_over_64_kib_gets_413(client: TestClient, ports: FakePorts) -> None:
    response = client.post(
        "/tasks",
        content=b'{"title": "' + b"x" * (64 * 1024) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert "detail" in response.json()
    assert ports.state.published == []


def test_malformed_json_gets_422(client: TestClient) -> None:
    response = client.post(
        "/tasks", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


def test_unknown_and_malformed_ids(client: TestClient) -> None:
    assert client.get(f"/tasks/{uuid4()}").status_code == 404
    assert client.get(f"/tasks/{uuid4()}").json() == {"detail": "task not found"}
    assert client.get("/tasks/not-a-uuid").status_code == 422
    assert client.delete(f"/tasks/{uuid4()}").status_code == 404


def test_status_as_query_or_body(client: TestClient) -> None:
    task_id = create(client)["id"]
    by_query = client.put(f"/tasks/{task_id}/status", params={"status": "in_progress"})
    assert by_query.json()["status"] == "in_progress"
    by_body = client.put(f"/tasks/{task_id}/status", json={"status": "completed"})
    assert by_body.json()["status"] == "completed"
    assert client.put(f"/tasks/{task_id}/status").status_code == 422
    assert client.put(f"/tasks/{task_id}/status", params={"status": "done"}).status_code == 422
    conflicting = client.put(
        f"/tasks/{task_id}/status", params={"status": "pending"}, json={"status": "completed"}
    )
    assert conflicting.status_code == 400


def test_if_match_guards_writes(client: TestClient) -> None:
    created = client.post("/tasks", json={"title": "T"})
    task_id, etag = created.json()["id"], created.headers["ETag"]
    changed = client.patch(f"/tasks/{task_id}", json={"title": "U"}, headers={"If-Match": etag})
    assert changed.status_code == 200
    stale = client.patch(f"/tasks/{task_id}", json={"title": "V"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    stale_delete = client.delete(f"/tasks/{task_id}", headers={"If-Match": etag})
    assert stale_delete.status_code == 412
    fresh = client.delete(f"/tasks/{task_id}", headers={"If-Match": changed.headers["ETag"]})
    assert fresh.status_code == 204


def test_if_match_holds_when_any_listed_strong_tag_is_current(
    client: TestClient, ports: FakePorts
) -> None:
    created = client.post("/tasks", json={"title": "T"})
    task_id, old = created.json()["id"], created.headers["ETag"]
    current = client.patch(f"/tasks/{task_id}", json={"title": "U"}).headers["ETag"]
    listed = client.patch(
        f"/tasks/{task_id}", json={"title": "V"}, headers={"If-Match": f"{old}, {current}"}
    )
    assert listed.status_code == 200, listed.text
    current = listed.headers["ETag"]
    assert (
        client.put(
            f"/tasks/{task_id}/status", params={"status": "completed"}, headers={"If-Match": "*"}
        ).json()["status"]
        == "completed"
    )
    current = client.get(f"/tasks/{task_id}").headers["ETag"]
    published = len(ports.state.published)
    for refused in (f"W/{current}", f"{old}, W/{current}", ""):
        response = client.patch(
            f"/tasks/{task_id}", json={"title": "W"}, headers={"If-Match": refused}
        )
        assert response.status_code == 412, (refused, response.text)
    for malformed in (current.strip('"'), f"*, {current}", f"{current} {old}"):
        response = client.patch(
            f"/tasks/{task_id}", json={"title": "W"}, headers={"If-Match": malformed}
        )
        assert response.status_code == 400, (malformed, response.text)
        assert "If-Match" in response.json()["detail"]
    assert len(ports.state.published) == published
    assert client.get(f"/tasks/{task_id}").json()["title"] == "V"
    deleted = client.delete(f"/tasks/{task_id}", headers={"If-Match": f'"gone", {current}'})
    assert deleted.status_code == 204


def test_patch_refuses_null_for_required_fields(client: TestClient) -> None:
    task_id = create(client)["id"]
    assert client.patch(f"/tasks/{task_id}", json={"title": None}).status_code == 422
    assert client.patch(f"/tasks/{task_id}", json={"priority": None}).status_code == 422
    assert client.patch(f"/tasks/{task_id}", json={"unknown": 1}).status_code == 422


def test_list_limits_and_cursor(client: TestClient) -> None:
    for i in range(3):
        create(client, priority=i + 1)
    page = client.get("/tasks", params={"limit": 2}).json()
    assert len(page["items"]) == 2
    assert page["next_cursor"]
    rest = client.get("/tasks", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None
    for bad in ("0", "101", "-1", "many"):
        assert client.get("/tasks", params={"limit": bad}).status_code == 422
    assert client.get("/tasks", params={"cursor": "garbage!"}).status_code == 400
    assert client.get("/tasks", params={"status": "nope"}).status_code == 422


def test_store_outage_gets_503_with_retry_after(client: TestClient, ports: FakePorts) -> None:
    task_id = create(client)["id"]
    ports.state.down = True
    for response in (client.get(f"/tasks/{task_id}"), client.post("/tasks", json={"title": "T"})):
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) > 0
        assert "detail" in response.json()
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert client.get("/health").status_code == 200
    ports.state.down = False
    assert client.get("/ready").status_code == 200
    assert client.get(f"/tasks/{task_id}").status_code == 200


def test_health_and_ready_need_no_key(client: TestClient) -> None:
    assert client.get("/health", headers={"X-API-Key": ""}).json() == {"status": "ok"}
    assert client.get("/ready", headers={"X-API-Key": ""}).status_code == 200


def test_completed_event_is_forwarded_to_notify(client: TestClient, ports: FakePorts) -> None:
    task_id = create(client)["id"]
    client.put(f"/tasks/{task_id}/status", params={"status": "completed"})
    completed = ports.state.published[-1]
    envelope = {"id": "x", "type": "task.completed", "data": completed.model_dump(mode="json")}
    assert client.post("/events/task-completed", json=envelope).json() == {"status": "SUCCESS"}
    assert ports.notifications.sent == [completed]
    ports.notifications.failing = True
    assert client.post("/events/task-completed", json=envelope).json() == {"status": "RETRY"}
    undecodable = client.post("/events/task-completed", json={"data": {"nope": 1}})
    assert undecodable.json() == {"status": "DROP"}


def test_without_a_key_nothing_but_401_is_looked_at(ports: FakePorts) -> None:
    app = create_app(Settings(), connect=ports.connect)
    with TestClient(app) as anonymous:
        for method, body, headers in [
            ("GET", None, {}),
            ("POST", b"<xml/>", {"Content-Type": "application/xml"}),
            ("POST", b"x" * 200_000, {"Content-Type": "application/json"}),
        ]:
            response = anonymous.request(method, "/tasks", content=body, headers=headers)
            assert response.status_code == 401, method
    assert ports.state.items == {}


def test_openapi_documents_the_key_as_a_security_scheme(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The API key (secret `task-api-key`)",
    }
    for path, operations in schema["paths"].items():
        required = [op.get("security") for op in operations.values()]
        expected: list[object] = (
            [[{"ApiKey": []}]] * len(operations) if path.startswith("/tasks") else []
        )
        assert [r for r in required if r] == expected, path


def test_openapi_documents_every_route(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/tasks", "/tasks/{task_id}", "/tasks/{task_id}/status", "/health", "/ready"} <= set(
        paths
    )


def test_the_subscription_route_is_for_the_sidecar_only(client: TestClient) -> None:
    response = client.post(
        "/events/task-completed", json={"data": {}}, headers={"dapr-api-token": "guess"}
    )
    assert response.status_code == 401


def test_cases_schemathesis_found(client: TestClient) -> None:
    # 422 answers carry either FastAPI's list of field errors or one message: the
    # schema must allow both.
    paths = client.get("/openapi.json").json()["paths"]
    for path, method in (("/tasks", "post"), ("/tasks/{task_id}/status", "put")):
        schema = paths[path][method]["responses"]["422"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorBody"}
    task_id = create(client)["id"]
    missing = client.put(
        f"/tasks/{task_id}/status", content=b"null", headers={"Content-Type": "application/json"}
    )
    assert (missing.status_code, missing.json()["detail"]) == (
        422,
        "status is required, as ?status= or a JSON body",
    )
    assert client.post("/tasks", json={"title": "T", "priority": "2"}).status_code == 422


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""]
)
def test_a_body_that_is_not_json_gets_415(
    client: TestClient, ports: FakePorts, content_type: str
) -> None:
    response = client.post(
        "/tasks", content=b'{"title": "x"}', headers={"Content-Type": content_type}
    )
    assert response.status_code == 415
    assert response.json() == {"detail": "request bodies must be application/json"}
    assert ports.state.published == []


def test_json_media_types_with_parameters_or_suffixes_are_json(client: TestClient) -> None:
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        response = client.post(
            "/tasks", content=b'{"title": "x"}', headers={"Content-Type": content_type}
        )
        assert response.status_code == 201, content_type


@pytest.mark.parametrize("root_path", ["/api", "/v1/task-platform"])
def test_the_api_key_is_needed_behind_a_root_path(ports: FakePorts, root_path: str) -> None:
    """Served under a prefix (uvicorn --root-path, a mounted app), the full path no longer
    starts with /tasks: the guard must still refuse, judging the route path."""
    app = create_app(Settings(), connect=ports.connect)
    with TestClient(app, root_path=root_path) as client:
        assert (
            client.post(
                "/tasks", json={"title": "t"}, headers={"X-API-Key": "test-key"}
            ).status_code
            == 201
        )
        for path in ("/tasks", f"{root_path}/tasks", f"/tasks/{uuid4()}"):
            response = client.get(path)
            assert response.status_code == 401, (path, response.text)
        assert client.get("/health").status_code == 200


def test_paths_outside_the_public_list_need_the_key(client: TestClient) -> None:
    """Deny by default: a route added later is protected without anyone remembering to."""
    for path in ("/nothing-here", "//tasks", "/tasks/../tasks", "/Tasks"):
        assert client.get(path, headers={"X-API-Key": ""}).status_code == 401, path
    for path in ("/health", "/openapi.json", "/docs"):
        assert client.get(path, headers={"X-API-Key": ""}).status_code == 200, path
