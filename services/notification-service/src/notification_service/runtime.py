"""What the routes need at run time, built once per process in the lifespan."""

from dataclasses import dataclass

from fastapi import Request

from notification_service.lag import LagMeter
from notification_service.notification_log import NotificationLog
from notification_service.ports import StateStore, Stores

# notification-service needs the stores and nothing else.
Ports = Stores[StateStore]


@dataclass(frozen=True, slots=True)
class Runtime:
    state: StateStore
    notifications: NotificationLog
    lag: LagMeter
    # GET /notifications shows task titles: it needs task-api's key (dapr_service_kit's
    # ApiKeyGuard compares it).
    api_key: bytes


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def provide_runtime(request: Request) -> Runtime:
    """get_runtime as a FastAPI dependency. Async on purpose: FastAPI runs a plain-def
    dependency in a worker thread, a thread hop on every request."""
    return get_runtime(request)
