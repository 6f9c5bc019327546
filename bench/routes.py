"""The paired comparisons of `make bench` (bench/ab.py), each wrk run accounted
(bench/accounting.py): CPU ms per request of every process, the app's sidecar calls.

The routes: GET /tasks/{id}, POST /tasks and PUT /tasks/{id}/status at the paired
level on fresh stacks of three variants:
- off: no spans exported, as in the main table;
- shipped: tracing as `make up` ships it (the sidecars' Configuration, the apps' own
  defaults; no sampling set here), to a Jaeger of the stack's own;
- seed: bench/seed_app.py, the naive reference, against the task-api sidecar of a
  tracing-off stack of its own (task-api idles beside it): the off variant's queued
  events would still be relayed and delivered during a seed run on its stack.
And the project's daprd against stock daprd, GET and POST, no tracing.
"""

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ab
import httpx
from accounting import LAG_POLL, accounted, median_costs, wait_quiet
from workload import POOL, Scenario, median_of, prepare, run_wrk, running_stack, scenarios

from harness.processes import ManagedProcess, free_port, wait_until
from harness.stack import START_TIMEOUT, Stack

BENCH_DIR = Path(__file__).resolve().parent
ROUTES = ("GET /tasks/{id}", "POST /tasks", "PUT /tasks/{id}/status")
VARIANTS: dict[str, dict[str, Any]] = {"off": {}, "shipped": {"tracing": True}, "seed": {}}
NOTES = {
    "sidecar_calls": (
        "calls the app made to task-api's sidecar per request completed, by method "
        "(daprd's metrics: gRPC dapr.proto.runtime.v1.Dapr/*, HTTP /v1.0/*); those of "
        "task-api's writes include its write limiter's lag poll (" + LAG_POLL + "), "
        "every 0.25 s while writes come, a cost of the route; the seed's include the "
        "health check each new DaprClient makes"
    ),
    "cpu_ms": (
        "CPU ms per request completed of each process (its whole process group) over "
        "the wrk run; work still queued when the run ends is not counted; by role: app "
        "(task-api or the seed), sidecar (task-api's), pipeline (notification-service "
        "and its sidecar), total (every process of the stack)"
    ),
}


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def seed_app(stack: Stack) -> Iterator[tuple[ManagedProcess, str]]:
    """The seed app on a free port, calling the stack's task-api sidecar."""
    port = free_port()
    sidecar = stack.task_api
    process = ManagedProcess(
        "seed",
        [
            sys.executable, "-m", "uvicorn", "seed_app:app",
            "--app-dir", str(BENCH_DIR),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--no-access-log",
        ],
        stack.workdir / "seed.log",
        env={
            "DAPR_HTTP_PORT": str(sidecar.http_port),
            "DAPR_GRPC_PORT": str(sidecar.grpc_port),
            "DAPR_API_TOKEN": stack.dapr_api_token,
        },
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    process.start()
    try:
        wait_until(lambda: _answers(f"{url}/openapi.json"), timeout=START_TIMEOUT, what="seed")
        yield process, url
    finally:
        process.stop()


async def seed_pool(url: str) -> list[str]:
    """The seed's own tasks, created through it, for its reads and status changes."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as seed:
        created = [await seed.post("/tasks", json={"title": f"bench {i}"}) for i in range(POOL)]
    return [response.raise_for_status().json()["id"] for response in created]


def accounted_load(args: argparse.Namespace, names: tuple[str, ...]) -> ab.Load:
    """Runs a scenario on a variant's fresh stack: on the seed app for "seed", else on
    task-api; accounted."""
    plan: dict[str, Scenario] = {s.name: s for s in scenarios() if s.name in names}

    def load(stack: Stack, name: str, variant: str) -> dict[str, Any]:
        scenario = plan[name]
        if variant == "seed":
            with seed_app(stack) as (process, url):
                ids = asyncio.run(seed_pool(url))
                return accounted(
                    stack,
                    process,
                    lambda: run_wrk(
                        stack, scenario, ids, {}, args.paired_level, args.seconds, app_url=url
                    ),
                )
        ids, event = asyncio.run(prepare(stack))
        if not scenario.queues_events:
            # The pool's creates start task-api's lag poll: not a cost of the reads.
            wait_quiet(stack.task_api)
        assert stack.task_api.app is not None
        return accounted(
            stack,
            stack.task_api.app,
            lambda: run_wrk(stack, scenario, ids, event, args.paired_level, args.seconds),
        )

    return load


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return median_of(runs) | median_costs(runs)


def compare_routes(
    args: argparse.Namespace, table: dict[str, dict[str, Any]] | None
) -> dict[str, Any]:
    """The routes on each variant; off and shipped also as a ratio to their ceiling in
    the main `table` (None when it has no row at the paired level)."""
    comparison = ab.compare(
        VARIANTS,
        list(ROUTES),
        runs=args.runs,
        stack=running_stack,
        load=accounted_load(args, ROUTES),
        summary=summary,
        label="routes",
        change=("off", "shipped"),
    )
    ceilings = {s.name: s.ceiling for s in scenarios()}
    for name, row in comparison["scenarios"].items():
        ceiling = (table or {}).get(ceilings[name] or "", {}).get(str(args.paired_level))
        row["ceiling"] = ceilings[name]
        for variant in ("off", "shipped"):
            ratio = row[variant]["rps"] / ceiling["rps"] if ceiling and ceiling["rps"] else None
            row[variant]["ratio"] = None if ratio is None else round(ratio, 3)
    return comparison | {"connections": args.paired_level, "notes": NOTES}


def compare_daprd(args: argparse.Namespace) -> dict[str, Any]:
    """GET and POST on stacks of stock daprd and of the project's."""
    names = ("GET /tasks/{id}", "POST /tasks")
    comparison = ab.compare(
        {"stock": {"daprd": "stock"}, "project": {}},
        list(names),
        runs=args.runs,
        stack=running_stack,
        load=accounted_load(args, names),
        summary=summary,
        label="daprd",
    )
    return comparison | {"connections": args.paired_level}
