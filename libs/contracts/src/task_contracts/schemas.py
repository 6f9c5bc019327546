"""The JSON Schema of every model this package defines, as committed under `schemas/`.

`make schemas` rewrites the committed files; a test fails when they drift from the models.
"""

import json
from pathlib import Path

from pydantic import BaseModel

from task_contracts.events import TaskEvent
from task_contracts.requests import NotifyRequest, StatusChange, TaskCreate, TaskUpdate

EXPORTED_MODELS: tuple[type[BaseModel], ...] = (
    TaskEvent,
    TaskCreate,
    TaskUpdate,
    StatusChange,
    NotifyRequest,
)


def schema_file_name(model: type[BaseModel]) -> str:
    return f"{model.__name__}.schema.json"


def render_schema(model: type[BaseModel]) -> str:
    """The schema as it is committed: stable key order, trailing newline."""
    return json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for model in EXPORTED_MODELS:
        path = directory / schema_file_name(model)
        path.write_text(render_schema(model), encoding="utf-8")
        written.append(path)
    return written
