"""What the routes need at run time, built once per process in the lifespan."""

from dataclasses import dataclass

from fastapi import Request

from notification_service.lag import LagMeter
from notification_service.notification_log import NotificationLog
from notification_service.ports import SecretStore, StateStore


@dataclass(frozen=True, slots=True)
class Ports:
    """What the app opens for its lifetime: Dapr's in production, fakes in unit tests."""

    state: StateStore
    secrets: SecretStore


@dataclass(frozen=True, slots=True)
class Runtime:
    state: StateStore
    notifications: NotificationLog
    lag: LagMeter
    # GET /notifications shows task titles: it needs task-api's key (dapr_service_kit's
    # ApiKeyGuard compares it).
    api_key: bytes


def get_runtime(request: Request) -> Runtime:
    """The process's runtime, taken from the request rather than injected with Depends:
    a dependency costs about 10 µs per request, for a value that never changes."""
    runtime: Runtime = request.app.state.runtime
    return runtime
