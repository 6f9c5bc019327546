"""What the routes need at run time, built once per process in the lifespan."""

from dataclasses import dataclass

from fastapi import Request

from task_api.backpressure import WriteLimiter
from task_api.ports import NotificationClient, SecretStore, StateStore
from task_api.tasks import TaskService


@dataclass(frozen=True, slots=True)
class Ports:
    """What the app opens for its lifetime: Dapr's in production, fakes in unit tests."""

    state: StateStore
    secrets: SecretStore
    notifications: NotificationClient


@dataclass(frozen=True, slots=True)
class Runtime:
    tasks: TaskService
    state: StateStore
    notifications: NotificationClient
    api_key: bytes
    # None when back-pressure is off.
    write_limiter: WriteLimiter | None = None


def get_runtime(request: Request) -> Runtime:
    """The process's runtime, taken from the request rather than injected with Depends:
    a dependency costs about 10 µs per request, for a value that never changes."""
    runtime: Runtime = request.app.state.runtime
    return runtime
