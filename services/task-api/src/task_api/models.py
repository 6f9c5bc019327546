"""task-api's own view of a task: what its REST API returns."""

from typing import Annotated
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from task_contracts import TaskStatus
from task_contracts.requests import Description, Priority, Title


class Task(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "3f2c7a4e-8a62-4b0e-9a54-0f1f1b9d2c11",
                    "title": "Write the spec",
                    "description": "Cover every route.",
                    "status": "pending",
                    "priority": 2,
                    "created_at": "2026-11-28T10:00:00Z",
                    "updated_at": "2026-11-28T10:00:00Z",
                }
            ]
        },
    )

    id: UUID
    title: Title
    description: Description | None = None
    status: TaskStatus = TaskStatus.PENDING
    priority: Priority = 1
    created_at: AwareDatetime
    updated_at: AwareDatetime


class TaskPage(BaseModel):
    items: list[Task]
    next_cursor: Annotated[
        str | None,
        Field(description="Pass as `cursor` to get the next page; null on the last page"),
    ] = None


class ErrorBody(BaseModel):
    detail: str | list[dict[str, object]]
