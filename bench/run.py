"""`make bench`: task-api under load with wrk, against the ceiling of its own sidecar.

Starts the real stack (the integration harness), then for each scenario and each
concurrency level runs wrk against task-api and the same shape of load straight at
task-api's sidecar HTTP state API (the ceiling), three times; reports medians, the
ratio to the ceiling, create-to-notification latency and peak RSS of each process.
Those stacks export no traces; then GET and POST run on stacks with and without
tracing (every span of apps and sidecars to Jaeger, sampling 1, as `make up` runs), for
its overhead, and on stacks with stock daprd and with the project's (bench/ab.py).
Writes bench/results/bench.json, bench.md and bench.png, or on another backend profile
(TASK_PLATFORM_BACKEND) bench-<profile>.* without those two comparisons.

    uv run python bench/run.py --seconds 4 --levels 1,8,32,64 --runs 3
"""

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))

import ab  # noqa: E402
from backend_profile import BACKEND, RESULTS, result_file  # noqa: E402

from harness.processes import stop_leftovers  # noqa: E402
from harness.stack import Stack, notification_client  # noqa: E402

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


def stack_groups(plan: list[Scenario]) -> list[list[Scenario]]:
    """Scenarios that queue events get a fresh stack each, so that neither their
    backlog nor their growing data slows down another scenario; the others share one."""
    return [[s for s in plan if not s.queues_events]] + [[s] for s in plan if s.queues_events]


def run_wrk(
    stack: Stack,
    scenario: Scenario,
    task_ids: list[str],
    event: dict[str, Any],
    connections: int,
    seconds: int,
) -> dict[str, Any]:
    if scenario.target == "app":
        base = stack.task_api.url
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


def paired(
    variants: dict[str, dict[str, Any]], args: argparse.Namespace, label: str
) -> dict[str, Any]:
    """GET and POST on fresh stacks of each variant (bench/ab.py)."""
    plan = {s.name: s for s in scenarios() if s.name in ("GET /tasks/{id}", "POST /tasks")}

    def load(stack: Stack, name: str) -> dict[str, Any]:
        task_ids, event = asyncio.run(prepare(stack))
        return run_wrk(stack, plan[name], task_ids, event, args.paired_level, args.seconds)

    comparison = ab.compare(
        variants,
        list(plan),
        runs=args.runs,
        stack=running_stack,
        load=load,
        summary=median_of,
        label=label,
    )
    return comparison | {"connections": args.paired_level}


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


def write_markdown(report: dict[str, Any], path: Path) -> None:
    lines = [
        f"# Benchmark {report['started']} ({report.get('backend', 'redis')} profile)",
        "",
        f"wrk, {report['seconds']} s per level, median of {report['runs']} runs; "
        f"ratio = requests/s over the ceiling's at the same concurrency. No traces exported.",
        "",
        "| scenario | conc. | req/s | p50 ms | p95 ms | p99 ms | errors | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, levels in report["scenarios"].items():
        for level, row in levels.items():
            ratio = row.get("ratio")
            lines.append(
                f"| {name} | {level} | {row['rps']} | {row['p50_ms']} | {row['p95_ms']} | "
                f"{row['p99_ms']} | {row['errors']} | {'' if ratio is None else ratio} |"
            )
    e2e = report["end_to_end"]
    lines += [
        "",
        f"Create to notification recorded: p50 {e2e['p50_ms']} ms, p99 {e2e['p99_ms']} ms "
        f"({e2e['recorded']}/{e2e['tasks']} tasks).",
        "",
        "Peak RSS (MiB): " + ", ".join(f"{k} {v}" for k, v in report["peak_rss_mib"].items()),
        "",
    ]
    if report.get("tracing"):
        lines += ab.markdown(
            report["tracing"],
            f"Tracing overhead: {report['tracing']['connections']} connections, median of "
            f"{report['runs']} runs, a fresh and cold stack each (so lower than the table "
            "above); off = no spans exported, as above; on = every span of both apps and "
            "both sidecars to Jaeger (sampling 1), as `make up` runs.",
        )
    if report.get("daprd"):
        lines += ab.markdown(
            report["daprd"],
            f"The project's daprd against stock daprd: {report['daprd']['connections']} "
            f"connections, median of {report['runs']} runs, fresh stacks, no tracing; "
            "project = the pinned release plus third_party/dapr's fix to the outbox relay.",
        )
    path.write_text("\n".join(lines))


def write_chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (throughput, tail) = plt.subplots(1, 2, figsize=(13, 5))
    for name, levels in report["scenarios"].items():
        x = [int(level) for level in levels]
        style = "--" if name.startswith("ceiling") else "-"
        throughput.plot(x, [row["rps"] for row in levels.values()], style, marker="o", label=name)
        tail.plot(x, [row["p99_ms"] for row in levels.values()], style, marker="o", label=name)
    throughput.set(
        title="Throughput", xlabel="concurrent connections", ylabel="requests/s", yscale="log"
    )
    tail.set(title="p99 latency", xlabel="concurrent connections", ylabel="ms", yscale="log")
    throughput.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--levels", default="1,8,32,64")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--e2e", type=int, default=60, help="tasks for the end-to-end latency")
    parser.add_argument("--paired-level", type=int, default=32, help="connections, paired runs")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]

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
    # What tracing and the carried fix cost is measured once, on the default profile.
    tracing, daprd = None, None
    if BACKEND == "redis":
        tracing = paired({"off": {}, "on": {"tracing": True}}, args, "tracing")
        daprd = paired({"stock": {"daprd": "stock"}, "project": {}}, args, "daprd")
    report = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "backend": BACKEND,
        "seconds": args.seconds,
        "runs": args.runs,
        "levels": levels,
        "scenarios": table,
        "end_to_end": e2e,
        "peak_rss_mib": peaks,
        "tracing": tracing,
        "daprd": daprd,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    result_file("bench", "json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, result_file("bench", "md"))
    write_chart(report, result_file("bench", "png"))
    print(result_file("bench", "md").read_text())


if __name__ == "__main__":
    main()
