"""The task-api ASGI app: `uvicorn task_api.main:app`."""

import asyncio
import logging
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
from task_api import api, events
from task_api.backpressure import WriteLimiter
from task_api.body_guard import JsonBodyGuard
from task_api.dapr_adapters import connect_dapr
from task_api.errors import (
    IdempotencyKeyReused,
    InvalidCursor,
    PreconditionFailed,
    TaskBusy,
    TaskGone,
    TaskNotFound,
)
from task_api.etags import MalformedIfMatch
from task_api.ports import InfrastructureUnavailable
from task_api.runtime import Ports, Runtime
from task_api.settings import Settings
from task_api.tasks import TaskService
from task_api.write_gate import install_refusal, write_slots

logger = logging.getLogger(__name__)

# Every route needs the key but the probes, the API's description and the
# subscriptions under /events (the sidecar's, checked against its app token).
KEY_POLICY = KeyPolicy()
SUMMARY = "Tasks on Dapr state, pub/sub and secrets"
# What a client gets for each error the routes let through (anything else: 500).
ERRORS: dict[type[Exception], Answer] = {
    TaskNotFound: (404, "task not found"),
    TaskGone: (410, "the task this Idempotency-Key created has been deleted since"),
    PreconditionFailed: (412, "If-Match does not name the current version of the task"),
    TaskBusy: (409, "the task is being changed by another request; retry"),
    TooMuchContention: (409, "too many concurrent writers; retry"),
    InvalidCursor: (400, "invalid cursor"),
    MalformedIfMatch: (
        400,
        'If-Match must be * or a comma-separated list of quoted entity tags, e.g. "3f2c..."',
    ),
    IdempotencyKeyReused: (422, "Idempotency-Key was already used with a different body"),
    InfrastructureUnavailable: (503, "a backing service is unavailable; retry later"),
}


def create_app(
    settings: Settings | None = None, connect: Connector[Settings, Ports] | None = None
) -> FastAPI:
    """task-api: the REST API over tasks, and its subscription to completions.
    `connect` opens its state, secret and notification ports: Dapr's by default, fakes
    in unit tests."""
    settings = settings or Settings()

    @asynccontextmanager
    async def runtime_and_lag_watch(app: FastAPI, ports: Ports) -> AsyncIterator[None]:
        limiter = None
        if settings.event_lag_target_seconds > 0:
            limiter = WriteLimiter(
                ports.notifications.event_lag_seconds,
                target_seconds=settings.event_lag_target_seconds,
                poll_seconds=settings.event_lag_poll_seconds,
            )
        app.state.runtime = Runtime(
            tasks=TaskService(
                ports.state,
                cursor_key=await wait_for_secret(
                    ports.secrets.get_secret,
                    settings.cursor_key_secret,
                ),
                write_slot=write_slots(limiter),
            ),
            state=ports.state,
            notifications=ports.notifications,
            api_key=await wait_for_secret(
                ports.secrets.get_secret,
                settings.api_key_secret,
            ),
            write_limiter=limiter,
        )
        logger.info("task-api ready: API key and cursor key loaded from the secret store")
        watcher = asyncio.create_task(limiter.watch()) if limiter else None
        try:
            yield
        finally:
            if watcher:
                watcher.cancel()
                await asyncio.wait([watcher], timeout=5)

    app = service_app("task-api", SUMMARY, settings, connect or connect_dapr, runtime_and_lag_watch)
    app.include_router(api.router)
    app.include_router(events.router)
    install_error_handlers(app, ERRORS, retry_after_seconds=settings.retry_after_seconds)
    install_refusal(app)
    # Every body arrives whole (or is refused) before a route, and with it a write slot,
    # is reached; and only for a caller with the key (guard_and_observe's guard runs
    # first).
    app.add_middleware(
        JsonBodyGuard,
        max_bytes=settings.max_body_bytes,
        read_timeout_seconds=settings.body_read_timeout_seconds,
    )
    guard_and_observe(app, settings, KEY_POLICY)
    return app


configure_process("task-api")
app = create_app()
