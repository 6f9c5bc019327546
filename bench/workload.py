"""The load of `make bench`: its scenarios, fresh stacks, the pool of tasks a run picks
from, and one wrk run (bench/wrk/scenario.lua) with its summary. Like the other modules
of bench/, imported by bench/run.py once tests/ (the harness) is on the path."""

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from harness.stack import Stack

REPO_ROOT = Path(__file__).resolve().parents[1]

LUA_DIR = REPO_ROOT / "bench" / "wrk"
POOL = 200  # tasks (and ceiling keys) that reads and status changes pick from


@dataclass(frozen=True)
class Scenario:
    name: str
    target: str  # "app" or "sidecar"
    method: str
    path: str
    body: str | None = None
    ids: bool = False
    statuses: str | None = None
    ceiling: str | None = None  # the sidecar scenario this one is compared with
    # Commits through the outbox: every request queues an event that the stack keeps
    # relaying and delivering after the load stops.
    queues_events: bool = False


@contextlib.contextmanager
def running_stack(**options: Any) -> Iterator[Stack]:
    options.setdefault("tracing", False)
    stack = Stack(Path(tempfile.mkdtemp(prefix="bench-")), **options)
    try:
        try:
            stack.start()
        except Exception:
            print(stack.log_tails(), file=sys.stderr)
            raise
        yield stack
    finally:
        stack.stop()


RECORD = json.dumps({"title": "bench", "status": "pending", "priority": 1})


def transaction_body(event: dict[str, Any]) -> str:
    """A transaction like the one a create issues: an upsert and its outbox projection."""
    return json.dumps(
        {
            "operations": [
                {
                    "operation": "upsert",
                    "request": {
                        "key": "bench-tx-{n}",
                        "value": RECORD,
                        "metadata": {"type": "task.created"},
                    },
                },
                {
                    "operation": "upsert",
                    "request": {
                        "key": "bench-tx-{n}",
                        "value": event,
                        "metadata": {
                            "outbox.projection": "true",
                            "contentType": "application/json",
                        },
                    },
                },
            ]
        }
    )


def scenarios() -> list[Scenario]:
    return [
        Scenario(
            "ceiling state get", "sidecar", "GET", "/v1.0/state/statestore/bench:{id}", ids=True
        ),
        Scenario(
            "ceiling state save",
            "sidecar",
            "POST",
            "/v1.0/state/statestore",
            body=json.dumps([{"key": "bench-save", "value": RECORD}]),
        ),
        # The body is filled in per stack (it names one of the stack's tasks).
        Scenario(
            "ceiling transaction",
            "sidecar",
            "POST",
            "/v1.0/state/statestore/transaction",
            queues_events=True,
        ),
        Scenario(
            "GET /tasks/{id}", "app", "GET", "/tasks/{id}", ids=True, ceiling="ceiling state get"
        ),
        Scenario(
            "POST /tasks",
            "app",
            "POST",
            "/tasks",
            body=json.dumps({"title": "bench"}),
            ceiling="ceiling transaction",
            queues_events=True,
        ),
        Scenario(
            "PUT /tasks/{id}/status",
            "app",
            "PUT",
            "/tasks/{id}/status",
            ids=True,
            statuses="in_progress,completed,pending",
            ceiling="ceiling transaction",
            queues_events=True,
        ),
        Scenario(
            "GET /tasks?limit=20", "app", "GET", "/tasks?limit=20", ceiling="ceiling state get"
        ),
    ]


def run_wrk(
    stack: Stack,
    scenario: Scenario,
    task_ids: list[str],
    event: dict[str, Any],
    connections: int,
    seconds: int,
    app_url: str | None = None,
) -> dict[str, Any]:
    """wrk's summary (bench/wrk/report.lua) with req/s and the errors summed; an app
    scenario goes to task-api, or to the app at `app_url` (the seed app)."""
    if scenario.target == "app":
        base = app_url or stack.task_api.url
        headers = [f"X-API-Key: {stack.api_key}"]
        ids = task_ids
    else:
        base = stack.task_api.sidecar_url
        headers = [f"dapr-api-token: {stack.dapr_api_token}"]
        ids = [str(i) for i in range(POOL)]
    body = scenario.body
    if scenario.name == "ceiling transaction":
        body = transaction_body(event)
    if body is not None:
        headers.append("Content-Type: application/json")
    env = {
        **os.environ,
        "BENCH_LUA_DIR": str(LUA_DIR),
        "BENCH_METHOD": scenario.method,
        "BENCH_PATH": scenario.path,
        "BENCH_HEADERS": "|".join(headers),
        "BENCH_IDS": ",".join(ids) if scenario.ids else "",
        "BENCH_STATUSES": scenario.statuses or "",
    }
    if body is not None:
        env["BENCH_BODY"] = body
    threads = min(2, connections)
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
        "-s", str(LUA_DIR / "scenario.lua"), base,
    ]  # fmt: skip
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    seconds_run = result["duration_us"] / 1e6
    result["rps"] = result["requests"] / seconds_run
    result["errors"] = sum(
        result[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts", "non_2xx")
    )
    return result


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "rps": round(statistics.median(r["rps"] for r in runs), 1),
        "p50_ms": round(statistics.median(r["p50_us"] for r in runs) / 1000, 2),
        "p95_ms": round(statistics.median(r["p95_us"] for r in runs) / 1000, 2),
        "p99_ms": round(statistics.median(r["p99_us"] for r in runs) / 1000, 2),
        "errors": sum(r["errors"] for r in runs),
    }


async def prepare(stack: Stack) -> tuple[list[str], dict[str, Any]]:
    """Tasks for the reads and status changes, ceiling keys of the same size, and an
    event for the ceiling transaction's projection."""
    async with httpx.AsyncClient(
        base_url=stack.task_api.url, headers={"X-API-Key": stack.api_key}, timeout=30
    ) as api:
        created = [
            (await api.post("/tasks", json={"title": f"bench {i}"})).json() for i in range(POOL)
        ]
    async with httpx.AsyncClient(
        base_url=stack.task_api.sidecar_url,
        headers={"dapr-api-token": stack.dapr_api_token},
        timeout=30,
    ) as sidecar:
        saved = await sidecar.post(
            "/v1.0/state/statestore",
            json=[{"key": f"bench:{i}", "value": created[i]} for i in range(POOL)],
        )
        saved.raise_for_status()
    event = {
        "event_id": "00000000-0000-4000-8000-000000000000",
        "event_type": "task.created",
        "task_id": created[0]["id"],
        "title": "bench",
        "status": "pending",
        "timestamp": created[0]["created_at"],
    }
    return [t["id"] for t in created], event
