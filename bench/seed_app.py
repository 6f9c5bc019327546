"""The naive reference of `make bench`: the app a newcomer writes before adopting this
repo, kept plainly naive on purpose. Sync handlers (FastAPI runs them in its
threadpool), a new sync gRPC DaprClient per request (which checks the sidecar's health
first), no tracing, no auth, no outbox: state and event are written one after the other.
Its events go to a topic nobody subscribes to. The SDK reads DAPR_GRPC_PORT,
DAPR_HTTP_PORT and DAPR_API_TOKEN from the environment.

    uvicorn seed_app:app --app-dir bench
"""

import json
import uuid
from typing import Any

from dapr.clients import DaprClient
from fastapi import FastAPI, HTTPException

STORE = "statestore"
PUBSUB = "pubsub"
TOPIC = "task-events-seed"

app = FastAPI(title="seed")


@app.post("/tasks", status_code=201)
def create_task(body: dict[str, Any]) -> dict[str, Any]:
    task = {"id": str(uuid.uuid4()), "title": body["title"], "status": "pending"}
    event = json.dumps({"type": "task.created", "id": task["id"]})
    with DaprClient() as d:
        d.save_state(STORE, task["id"], json.dumps(task))
        d.publish_event(PUBSUB, TOPIC, event, data_content_type="application/json")
    return task


@app.get("/tasks/{task_id}")
def get_task(task_id: str) -> dict[str, Any]:
    with DaprClient() as d:
        data = d.get_state(STORE, task_id).data
    if not data:
        raise HTTPException(404)
    task: dict[str, Any] = json.loads(data)
    return task


@app.put("/tasks/{task_id}/status")
def change_status(task_id: str, status: str) -> dict[str, Any]:
    event = json.dumps({"type": "task.status", "id": task_id, "status": status})
    with DaprClient() as d:
        data = d.get_state(STORE, task_id).data
        if not data:
            raise HTTPException(404)
        task: dict[str, Any] = {**json.loads(data), "status": status}
        d.save_state(STORE, task_id, json.dumps(task))
        d.publish_event(PUBSUB, TOPIC, event, data_content_type="application/json")
    return task
