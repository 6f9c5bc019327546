"""The task-api ASGI app: `uvicorn task_api.main:app`."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from dapr_service_kit import health
from dapr_service_kit.api_key import ApiKeyGuard, KeyPolicy, document_api_key, runtime_api_key
from dapr_service_kit.logs import TraceContext, configure_logging
from dapr_service_kit.metrics import RequestMetrics, metrics_served
from dapr_service_kit.secrets import wait_for_secret
from task_api import api, events
from task_api.backpressure import WriteLimiter
from task_api.body_guard import JsonBodyGuard
from task_api.http_errors import install_error_handlers
from task_api.runtime import Connector, Runtime
from task_api.settings import Settings
from task_api.tasks import TaskService
from task_api.write_gate import WriteGate, runtime_limiter

logger = logging.getLogger(__name__)

# Every route needs the key but the probes, the API's description and the
# subscriptions under /events (the sidecar's, checked against its app token).
KEY_POLICY = KeyPolicy()


def create_app(settings: Settings | None = None, connect: Connector | None = None) -> FastAPI:
    settings = settings or Settings()
    if connect is None:
        from task_api.dapr_adapters import connect_dapr

        connect = connect_dapr

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            metrics_served(settings.metrics_host, settings.metrics_port),
            connect(settings) as ports,
        ):
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

    app = FastAPI(
        title="task-api",
        version="0.1.0",
        summary="Tasks on Dapr state, pub/sub and secrets",
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry bridge probes for a configured provider on every
        # request; Dapr's sidecars already trace every call between the services.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.include_router(api.router)
    app.include_router(health.router)
    app.include_router(events.router)
    install_error_handlers(app, settings.retry_after_seconds)
    app.add_middleware(JsonBodyGuard, max_bytes=settings.max_body_bytes)
    app.add_middleware(WriteGate, limiter=runtime_limiter)
    # Added last, so it runs first: no body is looked at for a caller without the key.
    app.add_middleware(ApiKeyGuard, expected=runtime_api_key, policy=KEY_POLICY)
    if settings.metrics_port is not None:
        app.add_middleware(RequestMetrics)
    # Outermost: every line logged while handling a request carries its trace.
    app.add_middleware(TraceContext)
    document_api_key(app, KEY_POLICY)
    return app


configure_logging("task-api")
app = create_app()
