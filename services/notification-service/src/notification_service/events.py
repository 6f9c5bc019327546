"""Subscription routes: Dapr delivers task events and dead letters here (see the
Subscription resources). The answer tells Dapr what to do with each message: SUCCESS,
RETRY (redeliver later) or DROP (to the dead-letter topic)."""

import logging
from typing import Any

from fastapi import Request
from prometheus_client import Counter
from pydantic import ValidationError

from dapr_service_kit.optimistic import TooMuchContention
from dapr_service_kit.subscriptions import DROP, RETRY, SUCCESS, subscription_router
from notification_service.models import NotificationKind
from notification_service.ports import InfrastructureUnavailable
from notification_service.runtime import get_runtime
from task_contracts import CURRENT_SCHEMA_VERSION, EventType, TaskEvent

logger = logging.getLogger(__name__)

EVENTS = Counter(
    "events_handled_total",
    "Task events delivered, by event type and outcome: recorded, duplicate, retry "
    "(asked to be redelivered), dropped (to the dead-letter topic), ignored (unknown type)",
    ["event_type", "outcome"],
)

router = subscription_router()

_KNOWN_TYPES = {t.value for t in EventType}
# Logged once per process each, so that a stream of them does not flood the log.
_reported_unknown_types: set[str] = set()
_reported_schema_versions: set[int] = set()


def _report_once(seen: set[Any], value: Any, message: str) -> None:
    if value not in seen:
        seen.add(value)
        logger.warning(message, value)


async def _envelope(request: Request) -> dict[str, Any] | None:
    try:
        envelope = await request.json()
    except ValueError:
        return None
    return envelope if isinstance(envelope, dict) else None


@router.post("/task-events")
async def on_task_event(request: Request) -> dict[str, str]:
    envelope = await _envelope(request)
    data = envelope.get("data") if envelope else None
    if not isinstance(data, dict):
        logger.warning("undecodable message on task-events: dropped to the dead-letter topic")
        EVENTS.labels("undecodable", "dropped").inc()
        return DROP
    event_type = data.get("event_type")
    if event_type not in _KNOWN_TYPES:
        # A newer producer's event: acknowledge it, never retry it forever.
        _report_once(_reported_unknown_types, str(event_type), "ignoring unknown event type %s")
        EVENTS.labels("unknown", "ignored").inc()
        return SUCCESS
    try:
        event = TaskEvent.model_validate(data)
    except ValidationError:
        logger.warning("invalid %s event: dropped to the dead-letter topic", event_type)
        EVENTS.labels(event_type, "dropped").inc()
        return DROP
    if event.schema_version > CURRENT_SCHEMA_VERSION:
        _report_once(
            _reported_schema_versions,
            event.schema_version,
            "event schema version %s is newer than this service knows; reading known fields",
        )
    runtime = get_runtime(request)
    notifications = runtime.notifications
    try:
        # SUCCESS only once the line is written, by this delivery or one it waited for.
        recorded = await notifications.record(
            NotificationKind.ACTIVITY,
            event_id=str(event.event_id),
            event_type=event.event_type.value,
            task_id=event.task_id,
            title=event.title,
            priority=event.priority,
            wait_seconds=notifications.timing.delivery_wait_seconds,
        )
    except (InfrastructureUnavailable, TooMuchContention) as error:
        logger.warning("could not record event %s (%s): will be redelivered", event.event_id, error)
        EVENTS.labels(event_type, "retry").inc()
        return RETRY
    runtime.lag.observe(event.timestamp)
    EVENTS.labels(event_type, "recorded" if recorded else "duplicate").inc()
    return SUCCESS


@router.post("/dead-letters")
async def on_dead_letter(request: Request) -> dict[str, str]:
    """Whatever arrives here is recorded as it is: it already failed elsewhere."""
    envelope = await _envelope(request) or {}
    data = envelope.get("data")
    fields = data if isinstance(data, dict) else {}
    title = fields.get("title")
    notifications = get_runtime(request).notifications
    try:
        await notifications.record(
            NotificationKind.DEAD_LETTER,
            event_id=str(envelope.get("id", "unknown")),
            event_type=str(fields.get("event_type", envelope.get("type", "unknown"))),
            title=title if isinstance(title, str) else None,
            wait_seconds=notifications.timing.delivery_wait_seconds,
        )
    except (InfrastructureUnavailable, TooMuchContention) as error:
        logger.warning("could not record a dead letter (%s): will be redelivered", error)
        return RETRY
    return SUCCESS
