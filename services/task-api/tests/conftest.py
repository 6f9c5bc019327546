from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from task_api_fakes import FakePorts, MemoryState

from task_api.main import create_app
from task_api.settings import Settings
from task_api.tasks import TaskService


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
    app = create_app(Settings(), connect=ports.connect)
    with TestClient(app, headers={"X-API-Key": "test-key"}) as test_client:
        yield test_client
