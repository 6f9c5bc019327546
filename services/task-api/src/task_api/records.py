"""How a task is kept in the state store, and the events its changes publish."""

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from pydantic import AwareDatetime, BaseModel, ConfigDict

from task_api.models import Task
from task_contracts import EventType, TaskEvent

_CREATE_NAMESPACE = uuid5(NAMESPACE_URL, "urn:task-platform:task-api:create")


def task_key(task_id: UUID) -> str:
    return f"task:{task_id}"


class TaskRecord(BaseModel):
    """The stored document. `revision` is the task's HTTP ETag: ours, so that a write
    can hand it back without reading the store's own ETag again."""

    model_config = ConfigDict(frozen=True)

    task: Task
    revision: str
    # A deleted task stays as a tombstone (with a TTL) so that the delete is a write
    # the outbox publishes, like every other change.
    deleted_at: AwareDatetime | None = None
    # Where the task's entry is in its list-index shard (see task_index): a delete
    # removes that entry, and a list skips and removes any other entry naming this task.
    index_seq: int | None = None

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    def lists_as(self, seq: int) -> bool:
        """Whether the index entry at `seq` is this live task's own."""
        return self.deleted_at is None and self.index_seq in (None, seq)

    @classmethod
    def from_bytes(cls, data: bytes) -> "TaskRecord":
        return cls.model_validate_json(data)


def new_revision() -> str:
    return uuid4().hex


def created_record(task: Task, index_seq: int) -> TaskRecord:
    """A create is replayable (same Idempotency-Key, or a retry after a crash), so its
    revision is derived from the task id: a replay hands out the same ETag."""
    return TaskRecord(
        task=task, revision=uuid5(_CREATE_NAMESPACE, str(task.id)).hex, index_seq=index_seq
    )


def event_for(task: Task, event_type: EventType, at: datetime) -> TaskEvent:
    # A create's event id is derived from the task id for the same reason as its
    # revision: a replayed create publishes a duplicate that consumers drop.
    event_id = (
        uuid5(_CREATE_NAMESPACE, f"{task.id}/event") if event_type is EventType.CREATED else uuid4()
    )
    return TaskEvent(
        event_id=event_id,
        event_type=event_type,
        task_id=task.id,
        title=task.title,
        status=task.status,
        priority=task.priority,
        timestamp=at,
    )
