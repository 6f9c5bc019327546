from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from notification_fakes import API_KEY, SIDECAR_TOKEN, MemoryState

from notification_service.main import create_app
from notification_service.settings import Settings


@pytest.fixture
def state() -> MemoryState:
    return MemoryState()


@pytest.fixture
def client(state: MemoryState) -> Iterator[TestClient]:
    app = create_app(Settings(app_api_token=SIDECAR_TOKEN), connect=state.connect)
    # Both credentials, as no real caller holds: each test of a refusal drops one.
    headers = {"dapr-api-token": SIDECAR_TOKEN, "X-API-Key": API_KEY}
    with TestClient(app, headers=headers) as test_client:
        yield test_client
