"""Liveness and readiness, the same for every service: the app's lifespan puts its
runtime on `app.state.runtime` (with `state`, the state port) and its settings on
`app.state.settings` (with `retry_after_seconds`)."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from dapr_service_kit.errors import InfrastructureUnavailable

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is up. Calls nothing, so a sidecar outage never restarts the app."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "The sidecar or the store is down"}})
async def ready(request: Request) -> JSONResponse:
    """Ready when the sidecar and the state store behind it answer."""
    try:
        await request.app.state.runtime.state.ping()
    except InfrastructureUnavailable:
        return JSONResponse(
            {"status": "unavailable"},
            status_code=503,
            headers={"Retry-After": str(request.app.state.settings.retry_after_seconds)},
        )
    return JSONResponse({"status": "ready"})
