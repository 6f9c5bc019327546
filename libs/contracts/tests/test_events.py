from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest
from pydantic import ValidationError

from task_contracts import EventType, TaskEvent, TaskStatus


def make_event(**overrides: object) -> TaskEvent:
    fields: dict[str, object] = {
        "event_type": EventType.CREATED,
        "task_id": uuid4(),
        "title": "Write the spec",
        "status": TaskStatus.PENDING,
    }
    fields.update(overrides)
    return TaskEvent.model_validate(fields)


def test_each_status_has_its_event_type() -> None:
    assert EventType.for_status(TaskStatus.COMPLETED) is EventType.COMPLETED
    assert EventType.for_status(TaskStatus.IN_PROGRESS) is EventType.IN_PROGRESS
    assert EventType.for_status(TaskStatus.PENDING) is EventType.PENDING


def test_defaults_fill_identity_time_and_version() -> None:
    first, second = make_event(), make_event()
    assert first.event_id != second.event_id
    assert first.timestamp.tzinfo is not None
    assert first.schema_version == 1


def test_json_round_trip_keeps_every_field() -> None:
    event = make_event(priority=4, title="Ünïcødé ✓")
    assert TaskEvent.model_validate_json(event.model_dump_json()) == event


def test_unknown_fields_are_ignored() -> None:
    event = make_event()
    payload = event.model_dump(mode="json") | {"added_by_a_newer_producer": {"x": 1}}
    assert TaskEvent.model_validate(payload) == event


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValidationError, match="timestamp"):
        make_event(timestamp=datetime(2026, 1, 1))


def test_offsets_other_than_utc_are_kept_aware() -> None:
    cet = timezone(timedelta(hours=1))
    event = make_event(timestamp=datetime(2026, 1, 1, 13, tzinfo=cet))
    assert event.timestamp.astimezone(UTC).hour == 12


@pytest.mark.parametrize("title", ["", "x" * 201])
def test_title_length_is_bounded(title: str) -> None:
    with pytest.raises(ValidationError, match="title"):
        make_event(title=title)


@pytest.mark.parametrize("timestamp", [0, 1764331200, 1.5])
def test_numbers_are_not_timestamps(timestamp: object) -> None:
    with pytest.raises(ValidationError, match="ISO 8601"):
        make_event(timestamp=timestamp)


@pytest.mark.parametrize("priority", ["2", 2.0, True])
def test_priority_is_an_integer_not_something_that_converts_to_one(priority: object) -> None:
    with pytest.raises(ValidationError, match="priority"):
        make_event(priority=priority)
