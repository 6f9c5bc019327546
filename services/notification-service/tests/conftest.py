from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from notification_fakes import API_KEY, SIDECAR_TOKEN, FakePorts

from dapr_service_kit.testing import MemoryStateStore
from notification_service.main import create_app
from notification_service.settings import Settings


@pytest.fixture
def ports() -> FakePorts:
    return FakePorts()


@pytest.fixture
def state(ports: FakePorts) -> MemoryStateStore:
    return ports.state


@pytest.fixture
def client(ports: FakePorts) -> Iterator[TestClient]:
    app = create_app(Settings(app_api_token=SIDECAR_TOKEN), connect=ports.connect)
    # Both credentials, as no real caller holds: each test of a refusal drops one.
    headers = {"dapr-api-token": SIDECAR_TOKEN, "X-API-Key": API_KEY}
    with TestClient(app, headers=headers) as test_client:
        yield test_client
