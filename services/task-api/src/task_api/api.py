"""The public REST API over tasks."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Query, Response, status

from task_api.auth import ApiKey
from task_api.etags import format_etag, parse_if_match
from task_api.models import ErrorBody, Task, TaskPage
from task_api.runtime import Runtime, provide_runtime
from task_contracts import StatusChange, TaskCreate, TaskStatus, TaskUpdate

_errors: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "Bad request (e.g. an invalid cursor)",
        401: "Missing or invalid X-API-Key",
        404: "No such task",
        409: "Another writer is changing the task",
        412: "If-Match names a version that is no longer current",
        413: "Request body too large",
        415: "Request body that is not application/json",
        422: "Invalid input (the field is named), or an Idempotency-Key reused with another body",
        503: "The sidecar or the state store is unavailable (see Retry-After)",
    }.items()
}

router = APIRouter(prefix="/tasks", tags=["tasks"], dependencies=[ApiKey], responses=_errors)

RuntimeDep = Annotated[Runtime, Depends(provide_runtime)]
IfMatch = Annotated[
    str | None,
    Header(description="Only change the task if this is its current ETag", max_length=200),
]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Task)
async def create_task(
    body: TaskCreate,
    response: Response,
    runtime: RuntimeDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=200,
            description="Retrying with the same key returns the task the first request made",
        ),
    ] = None,
) -> Task:
    record = await runtime.tasks.create(body, idempotency_key)
    response.headers["Location"] = f"/tasks/{record.task.id}"
    response.headers["ETag"] = format_etag(record.revision)
    return record.task


@router.get("", response_model=TaskPage)
async def list_tasks(
    runtime: RuntimeDep,
    status_filter: Annotated[TaskStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> TaskPage:
    """Newest first. Pass `next_cursor` back as `cursor` for the next page."""
    return await runtime.tasks.list(status=status_filter, limit=limit, cursor=cursor)


@router.get("/{task_id}", response_model=Task)
async def get_task(task_id: UUID, response: Response, runtime: RuntimeDep) -> Task:
    record = await runtime.tasks.get(task_id)
    response.headers["ETag"] = format_etag(record.revision)
    return record.task


@router.patch("/{task_id}", response_model=Task)
async def update_task(
    task_id: UUID,
    body: TaskUpdate,
    response: Response,
    runtime: RuntimeDep,
    if_match: IfMatch = None,
) -> Task:
    record = await runtime.tasks.update(task_id, body, parse_if_match(if_match))
    response.headers["ETag"] = format_etag(record.revision)
    return record.task


@router.put("/{task_id}/status", response_model=Task)
async def change_status(
    task_id: UUID,
    response: Response,
    runtime: RuntimeDep,
    status_param: Annotated[TaskStatus | None, Query(alias="status")] = None,
    body: Annotated[StatusChange | None, Body()] = None,
    if_match: IfMatch = None,
) -> Task:
    """The new status comes as `?status=` or as the JSON body `{"status": ...}`."""
    given = {s for s in (status_param, body.status if body else None) if s is not None}
    if not given:
        raise HTTPException(422, "status is required, as ?status= or a JSON body")
    if len(given) > 1:
        raise HTTPException(400, "?status= and the JSON body name different statuses")
    record = await runtime.tasks.change_status(task_id, given.pop(), parse_if_match(if_match))
    response.headers["ETag"] = format_etag(record.revision)
    return record.task


@router.delete("/{task_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_task(task_id: UUID, runtime: RuntimeDep, if_match: IfMatch = None) -> Response:
    await runtime.tasks.delete(task_id, parse_if_match(if_match))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
