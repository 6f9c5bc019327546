from pathlib import Path

import pytest
from pydantic import BaseModel

from task_contracts.schemas import EXPORTED_MODELS, render_schema, schema_file_name, write_schemas

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"


@pytest.mark.parametrize("model", EXPORTED_MODELS, ids=lambda m: m.__name__)
def test_committed_schema_matches_model(model: type[BaseModel]) -> None:
    committed = SCHEMA_DIR / schema_file_name(model)
    assert committed.exists(), f"{committed.name} is missing: run `make schemas`"
    assert committed.read_text(encoding="utf-8") == render_schema(model), (
        f"{committed.name} disagrees with {model.__name__}: run `make schemas` and commit"
    )


def test_no_stale_schema_files() -> None:
    expected = {schema_file_name(m) for m in EXPORTED_MODELS}
    assert {p.name for p in SCHEMA_DIR.glob("*.schema.json")} == expected


def test_write_schemas_round_trips(tmp_path: Path) -> None:
    written = write_schemas(tmp_path)
    assert sorted(p.name for p in written) == sorted(schema_file_name(m) for m in EXPORTED_MODELS)
    for model, path in zip(EXPORTED_MODELS, written, strict=True):
        assert path.read_text(encoding="utf-8") == render_schema(model)
