"""notification-service's own routes: the `notify` and `pipeline/lag` methods (task-api
invokes them) and the notification feed."""

from typing import Annotated

from fastapi import APIRouter, Query, Request

from dapr_service_kit.sidecar_auth import FromSidecar
from notification_service.models import (
    NotificationKind,
    NotificationPage,
    NotifyResult,
    PipelineLag,
)
from notification_service.runtime import get_runtime
from task_contracts import NotifyRequest

router = APIRouter(tags=["notifications"])


@router.post(
    "/notify",
    response_model=NotifyResult,
    dependencies=[FromSidecar],
    responses={
        400: {"description": "The body is not JSON"},
        401: {"description": "Not called through the Dapr sidecar (no valid dapr-api-token)"},
        503: {
            "description": "The state store is unavailable, or the notification is still "
            "being recorded (see Retry-After)"
        },
    },
)
async def notify(body: NotifyRequest, request: Request) -> NotifyResult:
    """Invoked by task-api through Dapr service invocation. A repeated event is
    acknowledged and changes nothing. Answers 200 only once the line is written: a
    call that arrives while another is at it waits for that one, and gets 503 if it
    fails or is still at work when task-api's sidecar would stop waiting."""
    event = body.event
    notifications = get_runtime(request).notifications
    new = await notifications.record(
        NotificationKind.NOTIFY,
        event_id=str(event.event_id),
        event_type=event.event_type.value,
        task_id=event.task_id,
        title=event.title,
        priority=event.priority,
        wait_seconds=notifications.timing.notify_wait_seconds,
    )
    return NotifyResult(status="notified" if new else "duplicate")


@router.get(
    "/pipeline/lag",
    response_model=PipelineLag,
    dependencies=[FromSidecar],
    responses={401: {"description": "Not called through the Dapr sidecar"}},
)
async def pipeline_lag(request: Request) -> PipelineLag:
    """Invoked by task-api, which refuses writes while the events fall behind."""
    return PipelineLag(lag_seconds=round(get_runtime(request).lag.seconds(), 3))


@router.get("/notifications", response_model=NotificationPage)
async def list_notifications(
    request: Request, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> NotificationPage:
    """The most recent notifications, newest first."""
    return NotificationPage(items=await get_runtime(request).notifications.recent(limit))
