"""Events published on the `task-events` topic.

Producers build `TaskEvent` with a known `EventType`; consumers read one with
`TaskEvent.model_validate`, which ignores the fields a newer producer may add, once they
have checked that they know its `event_type` (an unknown one is acknowledged, not
retried), so that deploying a producer first never breaks a consumer.
"""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Final
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from task_contracts.statuses import TaskStatus

TASK_EVENTS_TOPIC: Final = "task-events"
TASK_EVENTS_DEAD_LETTER_TOPIC: Final = "task-events-dlq"
CURRENT_SCHEMA_VERSION: Final = 1


class EventType(StrEnum):
    CREATED = "task.created"
    UPDATED = "task.updated"
    PENDING = "task.pending"
    IN_PROGRESS = "task.in_progress"
    COMPLETED = "task.completed"
    DELETED = "task.deleted"

    @classmethod
    def for_status(cls, status: TaskStatus) -> "EventType":
        """The event a status change publishes: `task.<status>`."""
        return cls(f"task.{status.value}")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _no_epoch_numbers(value: object) -> object:
    # Pydantic would read a number as seconds since the epoch; the schema says an ISO
    # 8601 string, and a number here is more likely a bug than a timestamp.
    if isinstance(value, int | float):
        raise ValueError("timestamp must be an ISO 8601 string")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_no_epoch_numbers)]


class TaskEvent(BaseModel):
    """A committed change to one task."""

    # Unknown fields are ignored rather than rejected: consumers must keep working when a
    # producer adds a field.
    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: UUID = Field(default_factory=uuid4, description="Unique per change; the dedupe key")
    event_type: EventType
    task_id: UUID
    title: Annotated[str, Field(min_length=1, max_length=200)]
    status: TaskStatus
    priority: Annotated[int, Field(ge=1, le=5, strict=True)] = Field(
        default=1, description="The task's priority at the time of the change"
    )
    timestamp: Timestamp = Field(default_factory=_utc_now)
    schema_version: Annotated[int, Field(ge=1, strict=True)] = CURRENT_SCHEMA_VERSION
