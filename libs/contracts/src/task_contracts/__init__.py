"""Schemas shared by task-api and notification-service: the only code both import."""

from task_contracts.events import (
    CURRENT_SCHEMA_VERSION,
    TASK_EVENTS_DEAD_LETTER_TOPIC,
    TASK_EVENTS_TOPIC,
    EventType,
    TaskEvent,
)
from task_contracts.requests import NotifyRequest, StatusChange, TaskCreate, TaskUpdate
from task_contracts.statuses import TaskStatus

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "TASK_EVENTS_DEAD_LETTER_TOPIC",
    "TASK_EVENTS_TOPIC",
    "EventType",
    "NotifyRequest",
    "StatusChange",
    "TaskCreate",
    "TaskEvent",
    "TaskStatus",
    "TaskUpdate",
]
