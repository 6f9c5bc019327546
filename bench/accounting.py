"""What a request costs, measured around a wrk run: the CPU milliseconds of each process
of the stack, and the calls the app made to its sidecar, per request completed.

CPU is read from /proc for each process's whole group (the harness starts every
process as the leader of its own), so that a server's children count too; the delta
over the run is divided by the requests wrk completed. Work still queued when the run
ends (events the pipeline relays and delivers after it) is not counted.

The calls come from the sidecar's own metrics (daprd runs with them on, as `make up` and
the cluster run it): completed gRPC calls of the app-facing API
(dapr.proto.runtime.v1.Dapr/*) and requests to the HTTP API (/v1.0/...), by method,
before and after the run. Only the app talks to its sidecar during a run of an app
route; the harness's own calls (its readiness checks, the pool of tasks) come before.
"""

import os
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from harness.processes import ManagedProcess
from harness.stack import Service, Stack

GRPC_CALLS = "dapr_grpc_io_server_completed_rpcs"
HTTP_CALLS = "dapr_http_server_request_count"
GRPC_API = "/dapr.proto.runtime.v1.Dapr/"
HTTP_API = "/v1.0/"
# task-api's write limiter asks notification-service for the event lag (through the
# sidecar) every event_lag_poll_seconds (0.25 s) while writes come: a cost of the write
# routes, counted in their calls, and named here so the report can say how much of it.
LAG_POLL = "HTTP GET /v1.0/invoke/notification-service/method/pipeline/lag"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def group_cpu_seconds() -> dict[int, float]:
    """CPU seconds (user and system) by process group: of every live member, and of the
    children each member has reaped (cutime, cstime)."""
    totals: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended while being read
        group = int(fields[2])
        totals[group] = totals.get(group, 0.0) + sum(int(f) for f in fields[11:15]) / CLOCK_TICKS
    return totals


def cpu_seconds(processes: Iterable[ManagedProcess]) -> dict[str, float]:
    by_group = group_cpu_seconds()
    return {p.name: by_group.get(p.pid, 0.0) for p in processes}


def sidecar_calls(service: Service) -> dict[str, float]:
    """The app-facing calls the service's sidecar has served so far, by method (every
    status together)."""
    response = httpx.get(service.sidecar_metrics_url, timeout=10)
    response.raise_for_status()
    calls: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = sample.labels
            # The parser names a counter's samples <family>_total.
            if sample.name != f"{family.name}_total":
                continue
            if family.name == GRPC_CALLS and labels["grpc_server_method"].startswith(GRPC_API):
                method = "gRPC " + labels["grpc_server_method"].removeprefix(GRPC_API)
            elif family.name == HTTP_CALLS and labels["path"].startswith(HTTP_API):
                method = f"HTTP {labels['method']} {labels['path']}"
            else:
                continue
            calls[method] = calls.get(method, 0.0) + sample.value
    return calls


def wait_quiet(service: Service, *, interval: float = 1.0, timeout: float = 20.0) -> None:
    """Until the app has made no call to its sidecar for `interval`: task-api's lag
    poll goes on for a few seconds after the last write (of the pool, say), and would
    otherwise count as a cost of the reads that follow."""
    deadline = time.monotonic() + timeout
    last = sum(sidecar_calls(service).values())
    while time.monotonic() < deadline:
        time.sleep(interval)
        now = sum(sidecar_calls(service).values())
        if now == last:
            return
        last = now


def accounted(
    stack: Stack, app: ManagedProcess, run: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """`run` (a wrk run against `app`, which calls task-api's sidecar) with its cost per
    request completed: CPU ms of each process, grouped as the app, its sidecar, the
    event pipeline (notification-service and its sidecar) and the total of them all;
    the app's sidecar calls by method, and their total."""
    processes = [*stack.processes, *([app] if app.name not in _names(stack.processes) else [])]
    sidecar = stack.task_api
    cpu_before, calls_before = cpu_seconds(processes), sidecar_calls(sidecar)
    result = run()
    cpu_after, calls_after = cpu_seconds(processes), sidecar_calls(sidecar)
    requests = result["requests"] or 1
    cpu_ms = {
        name: round((cpu_after[name] - cpu_before[name]) * 1000 / requests, 3) for name in cpu_after
    }
    pipeline = _names(p for s in stack.replicas["notification-service"] for p in s.processes())
    assert sidecar.sidecar is not None
    calls = {
        method: round((count - calls_before.get(method, 0.0)) / requests, 3)
        for method, count in sorted(calls_after.items())
        if count > calls_before.get(method, 0.0)
    }
    return result | {
        "cpu_ms": cpu_ms,
        "cpu_ms_by_role": {
            "app": cpu_ms[app.name],
            "sidecar": cpu_ms[sidecar.sidecar.name],
            "pipeline": round(sum(cpu_ms[name] for name in pipeline), 3),
            "total": round(sum(cpu_ms.values()), 3),
        },
        "sidecar_calls": calls,
        "sidecar_calls_total": round(sum(calls.values()), 3),
    }


def _names(processes: Iterable[ManagedProcess]) -> set[str]:
    return {p.name for p in processes}


def median_costs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each cost over the runs (a method or process absent from a run
    counts 0 there), for the runs that were accounted."""
    accounted_runs = [r for r in runs if "cpu_ms" in r]
    if not accounted_runs:
        return {}

    def medians(field: str) -> dict[str, float]:
        keys = dict.fromkeys(key for r in accounted_runs for key in r[field])
        return {
            key: round(statistics.median(r[field].get(key, 0.0) for r in accounted_runs), 3)
            for key in keys
        }

    return {
        "cpu_ms": medians("cpu_ms"),
        "cpu_ms_by_role": medians("cpu_ms_by_role"),
        "sidecar_calls": medians("sidecar_calls"),
        "sidecar_calls_total": round(
            statistics.median(r["sidecar_calls_total"] for r in accounted_runs), 3
        ),
    }
