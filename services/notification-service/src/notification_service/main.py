"""The notification-service ASGI app: `uvicorn notification_service.main:app`."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from dapr_service_kit import health
from dapr_service_kit.api_key import ApiKeyGuard, KeyPolicy, document_api_key, runtime_api_key
from dapr_service_kit.logs import TraceContext, configure_logging
from dapr_service_kit.metrics import RequestMetrics, metrics_served
from dapr_service_kit.secrets import wait_for_secret
from notification_service import api, events
from notification_service.lag import LagMeter
from notification_service.notification_log import NotificationLog, TooMuchContention
from notification_service.ports import InfrastructureUnavailable
from notification_service.runtime import Connector, Runtime
from notification_service.settings import Settings

logger = logging.getLogger(__name__)

# The feed carries task titles, ids and priorities: it takes task-api's key. Open: the
# probes and the API's description; `notify`, `pipeline/lag` and the subscriptions under
# /events are the sidecar's, checked against its app token.
KEY_POLICY = KeyPolicy(sidecar_paths=frozenset({"/notify", "/pipeline/lag"}))


def create_app(settings: Settings | None = None, connect: Connector | None = None) -> FastAPI:
    settings = settings or Settings()
    if connect is None:
        from notification_service.dapr_adapters import connect_dapr

        connect = connect_dapr

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            metrics_served(settings.metrics_host, settings.metrics_port),
            connect(settings) as ports,
        ):
            state = ports.state
            app.state.runtime = Runtime(
                state=state,
                api_key=await wait_for_secret(
                    ports.secrets.get_secret,
                    settings.api_key_secret,
                ),
                lag=LagMeter(),
                notifications=NotificationLog(
                    state,
                    capacity=settings.recent_capacity,
                    dedupe_ttl_seconds=settings.dedupe_ttl_seconds,
                ),
            )
            yield

    app = FastAPI(
        title="notification-service",
        version="0.1.0",
        summary="Turns task events into notifications",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(api.router)
    app.include_router(events.router)
    app.include_router(health.router)

    async def unavailable(_: Request, error: Exception) -> JSONResponse:
        logger.warning("state store unavailable: %s", error)
        return JSONResponse(
            {"detail": "the state store is unavailable; retry later"},
            status_code=503,
            headers={"Retry-After": str(settings.retry_after_seconds)},
        )

    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=error)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    app.add_exception_handler(InfrastructureUnavailable, unavailable)
    app.add_exception_handler(TooMuchContention, unavailable)
    app.add_exception_handler(Exception, unexpected)
    app.add_middleware(ApiKeyGuard, expected=runtime_api_key, policy=KEY_POLICY)
    if settings.metrics_port is not None:
        app.add_middleware(RequestMetrics)
    # Outermost: every line logged while handling a request carries its trace.
    app.add_middleware(TraceContext)
    document_api_key(app, KEY_POLICY)
    return app


configure_logging("notification-service")
app = create_app()
