"""Each app's Prometheus metrics, on a port of their own: no key needed there, none
served through the API, and the counts follow the traffic."""

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from harness.polling import eventually
from harness.stack import Service, Stack, notification_client, notifications_for, task_api_client

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(service: Service) -> Samples:
    async with httpx.AsyncClient() as client:
        response = await client.get(service.metrics_url)
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def grown(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_counts_follow_the_traffic(stack: Stack) -> None:
    api_before = await scrape(stack.task_api)
    events_before = await scrape(stack.notification_service)
    async with task_api_client(stack) as api:
        created = [
            (await api.post("/tasks", json={"title": f"Counted {i}"})).json() for i in range(3)
        ]
        assert (await api.get(f"/tasks/{created[0]['id']}")).status_code == 200
        assert (await api.get("/tasks/not-a-uuid")).status_code == 422
    async with notification_client(stack) as feed:
        for task in created:

            async def recorded(task_id: str = task["id"]) -> list[dict[str, Any]]:
                return await notifications_for(feed, task_id, "activity")

            await eventually(recorded, what="the activity records")
    api_after = await scrape(stack.task_api)
    events_after = await scrape(stack.notification_service)

    create = {"route": "/tasks", "method": "POST"}
    assert grown(api_before, api_after, "http_requests_total", **create, status="201") == 3
    assert grown(api_before, api_after, "http_request_duration_seconds_count", **create) == 3
    read = {"route": "/tasks/{task_id}", "method": "GET"}
    assert grown(api_before, api_after, "http_requests_total", **read, status="200") == 1
    assert grown(api_before, api_after, "http_requests_total", **read, status="422") == 1
    handled = {"event_type": "task.created", "outcome": "recorded"}
    assert grown(events_before, events_after, "events_handled_total", **handled) == 3
    assert ("notification_lag_seconds", ()) in events_after
    assert ("write_limit", ()) in api_after


async def test_metrics_are_not_served_through_the_api(stack: Stack) -> None:
    async with httpx.AsyncClient() as client:
        for service in stack.services:
            assert (await client.get(f"{service.url}/metrics")).status_code in (401, 404)
