"""The lag notification-service reports to task-api: how old the task events it
handled lately were."""

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from notification_fakes import task_event

from notification_service.lag import WINDOW_SECONDS, LagMeter


class Clocks:
    def __init__(self) -> None:
        self.wall = datetime(2026, 11, 29, 12, tzinfo=UTC).timestamp()
        self.monotonic = 50.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.monotonic += seconds


def test_the_lag_is_the_oldest_event_handled_within_the_window() -> None:
    clocks = Clocks()
    meter = LagMeter(wall_clock=lambda: clocks.wall, monotonic=lambda: clocks.monotonic)
    assert meter.seconds() == 0.0
    meter.observe(datetime.fromtimestamp(clocks.wall - 3.0, UTC))
    meter.observe(datetime.fromtimestamp(clocks.wall - 1.0, UTC))
    assert meter.seconds() == 3.0
    clocks.advance(WINDOW_SECONDS + 0.1)
    assert meter.seconds() == 0.0  # nothing handled lately: no backlog seen


def test_handled_events_show_in_the_lag_only_the_sidecar_may_read(client: TestClient) -> None:
    event = task_event(timestamp="2020-01-01T00:00:00Z")
    delivered = client.post("/events/task-events", json={"data": event})
    assert delivered.json() == {"status": "SUCCESS"}
    # As task-api's invocation arrives: the sidecar's token, no API key.
    client.headers.pop("X-API-Key")
    lag = client.get("/pipeline/lag")
    assert lag.status_code == 200, lag.text
    assert lag.json()["lag_seconds"] > 3600
    client.headers.pop("dapr-api-token")
    assert client.get("/pipeline/lag").status_code == 401
