"""Fixtures for integration tests: one real stack per test session."""

import sys
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.deployed import DeployedStack, is_external
from harness.processes import stop_leftovers
from harness.stack import RunningStack, Stack, notification_client, task_api_client

_stack_key = pytest.StashKey[RunningStack]()


def _run_stack(config: pytest.Config, workdir: Path, **variant: Any) -> Iterator[Stack]:
    running = Stack(workdir, **variant)
    config.stash[_stack_key] = running
    try:
        running.start()
    except Exception:
        print(running.log_tails(), file=sys.stderr)
        running.stop()
        raise
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    """The stack most tests share; tests must leave it running and healthy. With
    TASK_PLATFORM_STACK=external, a deployed one (see harness.deployed)."""
    if is_external():
        deployed = DeployedStack()
        request.config.stash[_stack_key] = deployed
        yield deployed
        return
    leftovers = stop_leftovers()
    if leftovers:
        print(f"stopped processes an earlier test run left behind: {leftovers}", file=sys.stderr)
    yield from _run_stack(request.config, Path(tmp_path_factory.mktemp("stack")))


@pytest.fixture(scope="module")
def own_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, stack: RunningStack
) -> Iterator[Stack]:
    """A stack of the module's own, for tests that stop, kill and restart its parts; a
    module's `stack_variant` mark gives the Stack options it needs."""
    if is_external():
        pytest.skip("stops and kills parts of the stack: only on a stack of the harness's own")
    variant = request.node.get_closest_marker("stack_variant")
    yield from _run_stack(
        request.config,
        Path(tmp_path_factory.mktemp("own-stack")),
        **(variant.kwargs if variant else {}),
    )
    # Failures of later tests show the shared stack's logs again.
    request.config.stash[_stack_key] = stack


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
async def task_api(stack: RunningStack) -> AsyncIterator[httpx.AsyncClient]:
    async with task_api_client(stack) as client:
        yield client


@pytest.fixture
async def notification_service(stack: RunningStack) -> AsyncIterator[httpx.AsyncClient]:
    async with notification_client(stack) as client:
        yield client
