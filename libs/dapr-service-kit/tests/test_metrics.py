"""Requests are counted under their route's template, whatever happens to them."""

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from dapr_service_kit.metrics import RequestMetrics


def count(route: str, method: str, status: str) -> float:
    labels = {"route": route, "method": method, "status": status}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


def test_routes_are_counted_by_template_and_failures_as_500() -> None:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        if thing_id == 0:
            raise RuntimeError("boom")
        return {"id": thing_id}

    app.add_middleware(RequestMetrics)
    before = {
        key: count(*key)
        for key in [
            ("/things/{thing_id}", "GET", "200"),
            ("/things/{thing_id}", "GET", "500"),
            ("unmatched", "GET", "404"),
        ]
    }
    with TestClient(app, raise_server_exceptions=False) as client:
        client.get("/things/1")
        client.get("/things/2")
        client.get("/things/0")
        client.get("/nothing")
    assert (
        count("/things/{thing_id}", "GET", "200") - before[("/things/{thing_id}", "GET", "200")]
        == 2
    )
    assert (
        count("/things/{thing_id}", "GET", "500") - before[("/things/{thing_id}", "GET", "500")]
        == 1
    )
    assert count("unmatched", "GET", "404") - before[("unmatched", "GET", "404")] == 1
