"""What every app of the project does around its own routes: once per process, its logs
and traces; once per app, the API key in front of its routes and, outside that, its
request metrics and the trace context of its log lines; for the app's lifetime, its
ports (Dapr's in production, fakes in unit tests) and its metrics port."""

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

from fastapi import FastAPI

from dapr_service_kit import health
from dapr_service_kit.api_key import ApiKeyGuard, KeyPolicy, document_api_key, runtime_api_key
from dapr_service_kit.logs import configure_logging
from dapr_service_kit.metrics import RequestMetrics, metrics_served
from dapr_service_kit.request_trace import RequestTrace
from dapr_service_kit.settings import SidecarAppSettings
from dapr_service_kit.tracing import configure_tracing, telemetry_config
from dapr_service_kit.validation import answer_validation_errors

AppSettings = TypeVar("AppSettings", bound=SidecarAppSettings)
AppPorts = TypeVar("AppPorts")
# Opens an app's ports for its lifetime.
Connector = Callable[[AppSettings], AbstractAsyncContextManager[AppPorts]]


def configure_process(service: str) -> None:
    """Before the app and its Dapr client exist: the client's channels must carry the
    trace context from the start."""
    configure_logging(service)
    configure_tracing(service)


def service_app(
    title: str,
    summary: str,
    settings: AppSettings,
    connect: Connector[AppSettings, AppPorts],
    run: Callable[[FastAPI, AppPorts], AbstractAsyncContextManager[None]],
) -> FastAPI:
    """An app with the probes (/health, /ready), its settings where the kit's guards and
    probes read them, 422 answers that any input can be echoed in, and a server span per
    request while traces are exported. While it
    runs, its ports are open (`connect`), its metrics are served, and `run` holds what
    it built on the ports (the routes' runtime, background tasks)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            metrics_served(settings.metrics_host, settings.metrics_port),
            connect(settings) as ports,
            run(app, ports),
        ):
            yield

    app = FastAPI(
        title=title,
        version="0.1.0",
        summary=summary,
        lifespan=lifespan,
        telemetry=telemetry_config(),
    )
    app.state.settings = settings
    app.include_router(health.router)
    answer_validation_errors(app)
    return app


def guard_and_observe(app: FastAPI, settings: SidecarAppSettings, policy: KeyPolicy) -> None:
    """Add after the app's own middleware: what is added last runs first, so no body is
    looked at for a caller without the key, and every line logged while handling a
    request carries its trace."""
    app.add_middleware(ApiKeyGuard, expected=runtime_api_key, policy=policy)
    if settings.metrics_port is not None:
        app.add_middleware(RequestMetrics)
    app.add_middleware(RequestTrace)
    document_api_key(app, policy)
