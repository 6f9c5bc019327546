"""A notification: one task event, as the person watching sees it."""

from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class NotificationKind(StrEnum):
    # From the task-events subscription: the activity feed.
    ACTIVITY = "activity"
    # From task-api's `notify` invocation: the user is told a task was completed.
    NOTIFY = "notify"
    # From task-events-dlq: an event nobody could process.
    DEAD_LETTER = "dead-letter"


class Notification(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: str = Field(description="The event's id; unique per kind")
    kind: NotificationKind
    event_type: str
    task_id: UUID | None = None
    title: str | None = None
    priority: int | None = None
    received_at: AwareDatetime
    message: Annotated[str, Field(description="The line the service logged for it")]


class NotificationPage(BaseModel):
    items: list[Notification]


class NotifyResult(BaseModel):
    status: Annotated[str, Field(examples=["notified", "duplicate"])]


class PipelineLag(BaseModel):
    lag_seconds: Annotated[
        float,
        Field(description="How old the task events handled in the last seconds were, at most"),
    ]
