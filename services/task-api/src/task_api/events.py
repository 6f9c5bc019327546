"""task-api's own subscriber: a completed task is announced to notification-service by
service invocation. Dapr delivers the events (see the Subscription resources); the
answer tells Dapr what to do with each: SUCCESS, RETRY (redeliver) or DROP (dead
letter)."""

import logging
from typing import Any

from fastapi import Request
from pydantic import ValidationError

from dapr_service_kit.subscriptions import DROP, RETRY, SUCCESS, subscription_router
from task_api.ports import InfrastructureUnavailable
from task_api.runtime import get_runtime
from task_contracts import TaskEvent

logger = logging.getLogger(__name__)

router = subscription_router()


@router.post("/task-completed")
async def on_task_completed(request: Request) -> dict[str, str]:
    try:
        envelope: Any = await request.json()
        event = TaskEvent.model_validate(envelope["data"])
    except (ValueError, KeyError, TypeError, ValidationError):
        logger.warning("undecodable task.completed event: dropped to the dead-letter topic")
        return DROP
    try:
        await get_runtime(request).notifications.notify(event)
    except InfrastructureUnavailable as error:
        logger.warning(
            "notify for task %s failed (%s): will be redelivered",
            event.task_id,
            error,
            extra={"event_id": str(event.event_id)},
        )
        return RETRY
    # The end of this completion's retries: the sidecar acknowledges it now.
    logger.info(
        "notify for task %s delivered", event.task_id, extra={"event_id": str(event.event_id)}
    )
    return SUCCESS
