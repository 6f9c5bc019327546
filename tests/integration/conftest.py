"""Fixtures for integration tests: one real stack per test session."""

import sys
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import httpx
import pytest

from harness.processes import stop_leftovers
from harness.stack import Stack

_stack_key = pytest.StashKey[Stack]()


@pytest.fixture(scope="session")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    leftovers = stop_leftovers()
    if leftovers:
        print(f"stopped processes an earlier test run left behind: {leftovers}", file=sys.stderr)
    running = Stack(Path(tmp_path_factory.mktemp("stack")))
    request.config.stash[_stack_key] = running
    try:
        running.start()
    except Exception:
        print(running.log_tails(), file=sys.stderr)
        running.stop()
        raise
    yield running
    running.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    running = item.config.stash.get(_stack_key, None)
    if running is not None and report.failed:
        report.sections.append(("logs of the stack's processes", running.log_tails()))
    return report


@pytest.fixture
async def task_api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=stack.task_api.url, headers={"X-API-Key": stack.api_key}, timeout=30.0
    ) as client:
        yield client


@pytest.fixture
async def notification_service(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.notification_service.url, timeout=30.0) as client:
        yield client
