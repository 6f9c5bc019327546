"""Liveness and readiness."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from notification_service.ports import InfrastructureUnavailable
from notification_service.runtime import get_runtime

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is up. Calls nothing, so a sidecar outage never restarts the app."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "The sidecar or the store is down"}})
async def ready(request: Request) -> JSONResponse:
    """Ready when the sidecar and the state store behind it answer."""
    try:
        await get_runtime(request).state.ping()
    except InfrastructureUnavailable:
        return JSONResponse(
            {"status": "unavailable"},
            status_code=503,
            headers={"Retry-After": str(request.app.state.settings.retry_after_seconds)},
        )
    return JSONResponse({"status": "ready"})
