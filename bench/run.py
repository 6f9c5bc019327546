"""`make bench`: task-api's routes under wrk load, beside their sidecar's ceiling.

Starts the real stack (the integration harness), then for each scenario and each
concurrency level runs wrk against task-api and the same shape of load straight at
task-api's sidecar HTTP state API (the ceiling), three times; reports medians, the
ratio to the ceiling, create-to-notification latency and peak RSS of each process.
Those stacks export no traces. Then the routes table (bench/routes.py): GET, POST and
PUT at --paired-level connections on fresh stacks with tracing off, with tracing as
`make up` ships it, and the seed app (bench/seed_app.py, the naive reference); each
with its ratio to the ceiling, p99, sidecar calls per request and CPU ms per request of
the app, its sidecar and the event pipeline (bench/accounting.py). Then GET and POST
on stacks with stock daprd and with the project's. --skip routes,daprd leaves those
comparisons out. Writes bench/results/bench.json, bench.md and bench.png
(bench/report.py), or on another backend profile (TASK_PLATFORM_BACKEND)
bench-<profile>.* without the two comparisons.

    uv run python bench/run.py --seconds 4 --levels 1,8,32,64 --runs 3
"""

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))

from backend_profile import BACKEND, RESULTS, result_file  # noqa: E402
from report import write_chart, write_markdown  # noqa: E402
from routes import compare_daprd, compare_routes  # noqa: E402
from workload import Scenario, median_of, prepare, run_wrk, running_stack, scenarios  # noqa: E402

from harness.processes import stop_leftovers  # noqa: E402
from harness.stack import Stack, notification_client  # noqa: E402

PARTS = ("routes", "daprd")


def stack_groups(plan: list[Scenario]) -> list[list[Scenario]]:
    """Scenarios that queue events get a fresh stack each, so that neither their
    backlog nor their growing data slows down another scenario; the others share one."""
    return [[s for s in plan if not s.queues_events]] + [[s] for s in plan if s.queues_events]


async def end_to_end(stack: Stack, count: int) -> dict[str, Any]:
    """Create-to-recorded latency: task created_at to notification received_at."""
    async with httpx.AsyncClient(
        base_url=stack.task_api.url, headers={"X-API-Key": stack.api_key}, timeout=30
    ) as api:
        created = {}
        for i in range(count):
            task = (await api.post("/tasks", json={"title": f"e2e {i}"})).json()
            created[task["id"]] = datetime.fromisoformat(task["created_at"])
            await asyncio.sleep(0.05)  # a steady trickle, not a burst: latency, not queueing
    latencies: dict[str, float] = {}
    deadline = time.monotonic() + 60
    async with notification_client(stack) as ns:
        while len(latencies) < count and time.monotonic() < deadline:
            items = (await ns.get("/notifications", params={"limit": 200})).json()["items"]
            for item in items:
                if item["task_id"] in created and item["kind"] == "activity":
                    received = datetime.fromisoformat(item["received_at"])
                    latencies[item["task_id"]] = (
                        received - created[item["task_id"]]
                    ).total_seconds()
            await asyncio.sleep(0.5)
    values = sorted(latencies.values())
    return {
        "tasks": count,
        "recorded": len(values),
        "p50_ms": round(statistics.median(values) * 1000, 1),
        "p99_ms": round(values[min(len(values) - 1, int(len(values) * 0.99))] * 1000, 1),
    }


def peak_rss_mib(stack: Stack) -> dict[str, float]:
    peaks = {}
    for service in stack.services:
        for process in service.processes():
            peaks[process.name] = round(process.memory_kib("VmHWM") / 1024, 1)
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--levels", default="1,8,32,64")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--e2e", type=int, default=60, help="tasks for the end-to-end latency")
    parser.add_argument("--paired-level", type=int, default=32, help="connections, paired runs")
    parser.add_argument(
        "--skip", default="", help=f"comma-separated comparisons not to run: {', '.join(PARTS)}"
    )
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    skip = {part for part in args.skip.split(",") if part}
    if skip - set(PARTS):
        parser.error(f"--skip takes {', '.join(PARTS)}")

    stop_leftovers()
    with running_stack() as stack:
        # On a quiet stack: under load the outbox relay queues, and the latency would
        # measure the backlog rather than the path.
        e2e = asyncio.run(end_to_end(stack, args.e2e))
    plan = scenarios()
    raw: dict[str, dict[int, list[dict[str, Any]]]] = {
        s.name: {c: [] for c in levels} for s in plan
    }
    peaks: dict[str, float] = {}
    for run in range(args.runs):
        for group in stack_groups(plan):
            with running_stack() as stack:
                task_ids, event = asyncio.run(prepare(stack))
                for scenario, connections in ((s, c) for s in group for c in levels):
                    result = run_wrk(stack, scenario, task_ids, event, connections, args.seconds)
                    raw[scenario.name][connections].append(result)
                    print(
                        f"run {run + 1} {scenario.name} c={connections}: {result['rps']:.0f} req/s",
                        file=sys.stderr,
                        flush=True,
                    )
                for name, peak in peak_rss_mib(stack).items():
                    peaks[name] = max(peaks.get(name, 0.0), peak)
    table: dict[str, dict[str, Any]] = {}
    for scenario in plan:
        table[scenario.name] = {str(c): median_of(raw[scenario.name][c]) for c in levels}
    for scenario in plan:
        if scenario.ceiling:
            for c in levels:
                row, ceiling = table[scenario.name][str(c)], table[scenario.ceiling][str(c)]
                row["ratio"] = round(row["rps"] / ceiling["rps"], 3) if ceiling["rps"] else None
    # The routes against the seed and with tracing, and the carried fix, are measured
    # once, on the default profile.
    routes, daprd = None, None
    if BACKEND == "redis":
        routes = None if "routes" in skip else compare_routes(args, table)
        daprd = None if "daprd" in skip else compare_daprd(args)
    report = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "backend": BACKEND,
        "seconds": args.seconds,
        "runs": args.runs,
        "levels": levels,
        "scenarios": table,
        "end_to_end": e2e,
        "peak_rss_mib": peaks,
        "routes": routes,
        "daprd": daprd,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    result_file("bench", "json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, result_file("bench", "md"))
    write_chart(report, result_file("bench", "png"))
    print(result_file("bench", "md").read_text())


if __name__ == "__main__":
    main()
