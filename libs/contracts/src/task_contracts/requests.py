"""Request bodies: task-api's public API and notification-service's `notify` method."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from task_contracts.events import TaskEvent
from task_contracts.statuses import TaskStatus

Title = Annotated[str, Field(min_length=1, max_length=200, examples=["Write the spec"])]
Description = Annotated[str, Field(max_length=2000, examples=["Cover every route."])]
# strict: "2" or 2.0 is not a priority, however Python might coerce it.
Priority = Annotated[int, Field(ge=1, le=5, strict=True, examples=[2])]


class TaskCreate(BaseModel):
    """Body of `POST /tasks`."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description | None = None
    priority: Priority = 1


class TaskUpdate(BaseModel):
    """Body of `PATCH /tasks/{id}`: only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    description: Description | None = Field(default=None, description="null clears it")
    priority: Priority | None = None

    @model_validator(mode="after")
    def _required_fields_are_not_cleared(self) -> "TaskUpdate":
        # Leaving a field out keeps it; only the description may be set to null.
        for name in ("title", "priority"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class StatusChange(BaseModel):
    """Body of `PUT /tasks/{id}/status` (the status may also come as `?status=`)."""

    model_config = ConfigDict(extra="forbid")

    status: TaskStatus


class NotifyRequest(BaseModel):
    """Body of notification-service's `notify` method, invoked by task-api through Dapr."""

    model_config = ConfigDict(extra="ignore")

    event: TaskEvent
