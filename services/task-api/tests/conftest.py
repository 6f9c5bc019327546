from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from task_api_fakes import FakePorts, MemoryState

from task_api.main import create_app
from task_api.settings import Settings
from task_api.tasks import TaskService

SIDECAR_TOKEN = "sidecar-token"


@pytest.fixture
def state() -> MemoryState:
    return MemoryState()


@pytest.fixture
def service(state: MemoryState) -> TaskService:
    return TaskService(state)


@pytest.fixture
def ports() -> FakePorts:
    return FakePorts()


@pytest.fixture
def client(ports: FakePorts) -> Iterator[TestClient]:
    app = create_app(Settings(app_api_token=SIDECAR_TOKEN), connect=ports.connect)
    headers = {"X-API-Key": "test-key", "dapr-api-token": SIDECAR_TOKEN}
    with TestClient(app, headers=headers) as test_client:
        yield test_client
