"""The notification-service ASGI app: `uvicorn notification_service.main:app`."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from dapr_service_kit.api_key import KeyPolicy
from dapr_service_kit.app_setup import (
    Connector,
    configure_process,
    guard_and_observe,
    service_app,
)
from dapr_service_kit.http_errors import Answer, install_error_handlers
from dapr_service_kit.optimistic import TooMuchContention
from dapr_service_kit.secrets import wait_for_secret
from notification_service import api, events
from notification_service.dapr_adapters import connect_dapr
from notification_service.lag import LagMeter
from notification_service.notification_log import NotificationLog
from notification_service.ports import InfrastructureUnavailable
from notification_service.runtime import Ports, Runtime
from notification_service.settings import Settings
from notification_service.timing import AttemptTiming

# The feed carries task titles, ids and priorities: it takes task-api's key. Open: the
# probes and the API's description; `notify`, `pipeline/lag` and the subscriptions under
# /events are the sidecar's, checked against its app token.
KEY_POLICY = KeyPolicy(sidecar_paths=frozenset({"/notify", "/pipeline/lag"}))
SUMMARY = "Turns task events into notifications"
# What a client gets for each error the routes let through (anything else: 500). Both
# are worth a retry: an outage, or a notification still being recorded (DeliveryInProgress).
ERRORS: dict[type[Exception], Answer] = {
    InfrastructureUnavailable: (503, "the state store is unavailable; retry later"),
    TooMuchContention: (503, "the state store is unavailable; retry later"),
}


def create_app(
    settings: Settings | None = None, connect: Connector[Settings, Ports] | None = None
) -> FastAPI:
    """notification-service: the subscriptions, `notify`, the event lag and the feed.
    `connect` opens its state and secret stores: Dapr's by default, memory in unit
    tests."""
    settings = settings or Settings()

    @asynccontextmanager
    async def runtime(app: FastAPI, ports: Ports) -> AsyncIterator[None]:
        state = ports.state
        notifications = NotificationLog(
            state,
            capacity=settings.recent_capacity,
            dedupe_ttl_seconds=settings.dedupe_ttl_seconds,
            timing=AttemptTiming(call_seconds=settings.dapr_call_timeout_seconds),
        )
        app.state.runtime = Runtime(
            state=state,
            api_key=await wait_for_secret(
                ports.secrets.get_secret,
                settings.api_key_secret,
            ),
            lag=LagMeter(),
            notifications=notifications,
        )
        try:
            yield
        finally:
            await notifications.close()

    app = service_app("notification-service", SUMMARY, settings, connect or connect_dapr, runtime)
    app.include_router(api.router)
    app.include_router(events.router)
    install_error_handlers(app, ERRORS, retry_after_seconds=settings.retry_after_seconds)
    guard_and_observe(app, settings, KEY_POLICY)
    return app


configure_process("notification-service")
app = create_app()
