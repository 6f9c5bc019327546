"""A request that fails validation gets its 422, whatever characters its input holds."""

import json
from typing import Annotated, Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, Field

from dapr_service_kit.validation import LONE_SURROGATE, answer_validation_errors


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Constrained, as the contracts' strings are: pydantic then checks the characters.
    title: Annotated[str, Field(min_length=1, max_length=200)]
    priority: int = 1


def app() -> FastAPI:
    api = FastAPI()
    stored: list[Item] = []
    api.state.stored = stored

    @api.post("/items")
    async def create(item: Item) -> Item:
        stored.append(item)
        return item

    answer_validation_errors(api)
    return api


def post(client: TestClient, raw_json: bytes) -> tuple[int, dict[str, Any]]:
    response = client.post("/items", content=raw_json, headers={"Content-Type": "application/json"})
    # The answer is UTF-8 JSON a strict decoder accepts.
    return response.status_code, json.loads(response.content.decode("utf-8", "strict"))


@pytest.mark.parametrize("escape", [rb"\ud800", rb"\udfff", rb"a\udc00b", rb"\ude00\ud83d"])
def test_a_lone_surrogate_in_a_string_gets_422_saying_so(escape: bytes) -> None:
    api = app()
    with TestClient(api, raise_server_exceptions=False) as client:
        status, body = post(client, b'{"title": "' + escape + b'"}')
    assert status == 422, body
    [error] = body["detail"]
    assert error["loc"] == ["body", "title"]
    assert error["msg"] == LONE_SURROGATE
    # Shown as the escape it came as, which any client can read.
    assert error["input"] == escape.decode()
    assert api.state.stored == []


@pytest.mark.parametrize(
    ("raw_json", "echoed"),
    [
        (rb'{"title": "ok", "\ud800": 1}', r"\ud800"),  # a key
        (rb'{"title": "ok", "priority": "\udbff"}', r"\udbff"),  # another field's type
        (rb'{"title": ["x", "\udc01"]}', ["x", r"\udc01"]),  # inside a list
    ],
)
def test_a_lone_surrogate_anywhere_in_the_input_is_echoed_encodably(
    raw_json: bytes, echoed: object
) -> None:
    with TestClient(app(), raise_server_exceptions=False) as client:
        status, body = post(client, raw_json)
    assert status == 422, body
    assert echoed in [e["input"] for e in body["detail"]], body


def test_other_validation_errors_keep_fastapis_answer() -> None:
    with TestClient(app()) as client:
        status, body = post(client, '{"title": ["日本語 😀"]}'.encode())
    assert status == 422
    assert body == {
        "detail": [
            {
                "type": "string_type",
                "loc": ["body", "title"],
                "msg": "Input should be a valid string",
                "input": ["日本語 😀"],
            }
        ]
    }
