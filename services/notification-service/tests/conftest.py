from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from notification_fakes import MemoryState

from notification_service.main import create_app
from notification_service.settings import Settings


@pytest.fixture
def state() -> MemoryState:
    return MemoryState()


@pytest.fixture
def client(state: MemoryState) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(), connect=state.connect)) as test_client:
        yield test_client
