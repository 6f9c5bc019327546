"""The event pipeline under sustained load: how far notifications trail the creates.

Starts the real stack (the integration harness), runs wrk POST /tasks at full speed for
`--seconds`, and follows notification-service's log while it does: the moment each
task's task.created activity line appears is when a person watching the log sees it.
Afterwards it reads every task's created_at back through task-api and reports the lag
(p50/p99 during the load), the backlog when the load stopped, how long that backlog
took to drain, events and creates per second over time, lost and duplicated events,
and notification-service's peak RSS. Writes bench/results/event-lag.{json,md,png}, or
on another backend profile (TASK_PLATFORM_BACKEND) event-lag-<profile>.*.

    uv run python bench/event_lag.py --seconds 60 --connections 32
"""

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))

from backend_profile import BACKEND, RESULTS, result_file  # noqa: E402

from harness.processes import ManagedProcess, stop_leftovers  # noqa: E402
from harness.stack import Stack, list_all_tasks, task_api_client  # noqa: E402

LUA_DIR = REPO_ROOT / "bench" / "wrk"
ACTIVITY = "ACTIVITY task.created task="
# After the load, how long the backlog may take before the run counts what is missing.
DRAIN_DEADLINE = 120.0
SETTLE_SECONDS = 5.0


def cpu_of(processes: list[ManagedProcess]) -> dict[str, float]:
    return {p.name: p.cpu_seconds() for p in processes}


@dataclass
class Follower:
    """Follows notification-service's log from a thread: when each task's activity
    line appeared, how often, and the processes' peak RSS meanwhile."""

    log: Path
    processes: list[ManagedProcess]
    seen: dict[str, float] = field(default_factory=dict)
    lines: Counter[str] = field(default_factory=Counter)
    peak_rss: dict[str, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with self.log.open() as log:
            log.seek(0, 2)  # only what the load causes
            pending = ""
            while not self.stop.is_set():
                chunk = log.read()
                now = time.time()
                pending += chunk
                *complete, pending = pending.split("\n")
                for line in complete:
                    at = line.find(ACTIVITY)
                    if at >= 0:
                        task_id = line[at + len(ACTIVITY) :].split()[0]
                        self.lines[task_id] += 1
                        self.seen.setdefault(task_id, now)
                for process in self.processes:
                    self.peak_rss[process.name] = max(
                        self.peak_rss.get(process.name, 0.0), process.memory_kib() / 1024
                    )
                if not chunk:
                    time.sleep(0.05)


def run_wrk(stack: Stack, connections: int, seconds: int) -> dict[str, Any]:
    env = {
        "BENCH_LUA_DIR": str(LUA_DIR),
        "BENCH_METHOD": "POST",
        "BENCH_PATH": "/tasks",
        "BENCH_HEADERS": f"X-API-Key: {stack.api_key}|Content-Type: application/json",
        "BENCH_BODY": json.dumps({"title": "sustained load"}),
    }
    command = [
        "wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
        "-s", str(LUA_DIR / "scenario.lua"), stack.task_api.url,
    ]  # fmt: skip
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


async def created_at_of_every_task(stack: Stack) -> dict[str, float]:
    async with task_api_client(stack) as api:
        return {
            task["id"]: datetime.fromisoformat(task["created_at"]).timestamp()
            for task in await list_all_tasks(api)
        }


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def per_second(times: list[float], start: float, end: float) -> list[int]:
    counts = [0] * (int(end - start) + 1)
    for at in times:
        if start <= at <= end:
            counts[int(at - start)] += 1
    return counts


def analyse(
    created: dict[str, float], follower: Follower, load: tuple[float, float], wrk: dict[str, Any]
) -> dict[str, Any]:
    started, stopped = load
    lags = [follower.seen[t] - at for t, at in created.items() if t in follower.seen]
    # Past the first seconds: the lag answers a burst only once the outbox has relayed
    # its first events (about a second), so the start of the load runs ahead of it.
    settled = [
        follower.seen[t] - at
        for t, at in created.items()
        if t in follower.seen and at >= started + SETTLE_SECONDS
    ]
    missing = [t for t in created if t not in follower.seen]
    last_seen = max(follower.seen.values(), default=stopped)
    backlog = sum(1 for at in created.values() if at <= stopped) - sum(
        1 for at in follower.seen.values() if at <= stopped
    )
    end = max(last_seen, stopped)
    seconds = wrk["duration_us"] / 1e6
    return {
        "seconds": round(seconds, 1),
        "creates_acknowledged": wrk["requests"] - wrk["non_2xx"],
        "creates_refused": wrk["non_2xx"],
        "api_rate": round((wrk["requests"] - wrk["non_2xx"]) / seconds, 1),
        "tasks_stored": len(created),
        "notified": len(follower.seen),
        "lost": len(missing),
        "duplicated": sum(1 for count in follower.lines.values() if count > 1),
        "lag_p50_ms": round(statistics.median(lags) * 1000) if lags else None,
        "lag_p99_ms": round(percentile(lags, 0.99) * 1000) if lags else None,
        "lag_max_ms": round(max(lags) * 1000) if lags else None,
        "settled_lag_p99_ms": round(percentile(settled, 0.99) * 1000) if settled else None,
        "backlog_at_end": backlog,
        "drain_s": round(max(0.0, last_seen - stopped), 1),
        "relayed_per_s": round(len(follower.seen) / max(end - started, 1e-9), 1),
        "peak_rss_mib": {k: round(v, 1) for k, v in follower.peak_rss.items()},
        "timeline": {
            "creates_per_s": per_second(list(created.values()), started, end),
            "notified_per_s": per_second(list(follower.seen.values()), started, end),
            "lag_p99_ms_by_create_second": [
                round(percentile(bucket, 0.99) * 1000) if bucket else None
                for bucket in _lags_by_second(created, follower.seen, started, end)
            ],
        },
    }


def _lags_by_second(
    created: dict[str, float], seen: dict[str, float], start: float, end: float
) -> list[list[float]]:
    buckets: list[list[float]] = [[] for _ in range(int(end - start) + 1)]
    for task_id, at in created.items():
        if task_id in seen and start <= at <= end:
            buckets[int(at - start)].append(seen[task_id] - at)
    return buckets


def write_markdown(report: dict[str, Any], path: Path) -> None:
    r = report["result"]
    lines = [
        f"# Event lag under sustained load {report['started']} "
        f"({report.get('backend', 'redis')} profile)",
        "",
        f"wrk POST /tasks, {report['connections']} connections, {r['seconds']} s; lag is "
        "from a task's created_at to its task.created line in notification-service's log; "
        "no traces exported.",
        "",
        "| creates/s | lag p50 ms | lag p99 ms | lag max ms | p99 after 5 s | backlog at end "
        "| drain s | events/s | lost | duplicated | refused | notification-service RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {r['api_rate']} | {r['lag_p50_ms']} | {r['lag_p99_ms']} | {r['lag_max_ms']} | "
        f"{r['settled_lag_p99_ms']} | "
        f"{r['backlog_at_end']} | {r['drain_s']} | {r['relayed_per_s']} | {r['lost']} | "
        f"{r['duplicated']} | {r['creates_refused']} | "
        f"{r['peak_rss_mib'].get('notification-service')} |",
        "",
        "CPU seconds per process during the load / while draining: "
        + ", ".join(
            f"{name} {report['cpu_s_during_load'][name]} / {report['cpu_s_while_draining'][name]}"
            for name in report["cpu_s_during_load"]
        ),
        "",
    ]
    path.write_text("\n".join(lines))


def write_chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timeline = report["result"]["timeline"]
    figure, (rates, lag) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    rates.plot(timeline["creates_per_s"], label="creates acknowledged /s")
    rates.plot(timeline["notified_per_s"], label="task.created notified /s")
    rates.axvline(report["result"]["seconds"], linestyle=":", color="grey")
    rates.set(title="Creates and notifications over time", ylabel="per second")
    rates.legend()
    lag.plot(
        [v if v is not None else float("nan") for v in timeline["lag_p99_ms_by_create_second"]],
        color="tab:red",
        label="lag p99 of the tasks created in that second",
    )
    lag.axhline(2000, linestyle="--", color="grey", label="goal: 2 s")
    lag.set(xlabel="seconds since the load began", ylabel="ms")
    lag.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()

    stop_leftovers()
    stack = Stack(Path(tempfile.mkdtemp(prefix="bench-events-")), tracing=False)
    try:
        stack.start()
        service = stack.notification_service
        assert service.app is not None
        follower = Follower(
            service.app.log_path, [p for s in stack.services for p in s.processes()]
        )
        thread = threading.Thread(target=follower.run, daemon=True)
        thread.start()
        processes = [*(server.process for server in stack.backend.servers), *follower.processes]
        cpu_before = cpu_of(processes)
        started = time.time()
        wrk = run_wrk(stack, args.connections, args.seconds)
        stopped = time.time()
        cpu_load = cpu_of(processes)
        created = asyncio.run(created_at_of_every_task(stack))
        deadline = time.monotonic() + DRAIN_DEADLINE
        while len(follower.seen.keys() & created.keys()) < len(created):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        time.sleep(1)  # a duplicate would follow its first line closely
        follower.stop.set()
        thread.join()
        cpu_after = cpu_of(processes)
    except Exception:
        print(stack.log_tails(), file=sys.stderr)
        raise
    finally:
        stack.stop()
    report = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "backend": BACKEND,
        "connections": args.connections,
        "result": analyse(created, follower, (started, stopped), wrk),
        # Where the time goes: CPU seconds per process during the load and after it.
        "cpu_s_during_load": {k: round(cpu_load[k] - cpu_before[k], 1) for k in cpu_before},
        "cpu_s_while_draining": {k: round(cpu_after[k] - cpu_load[k], 1) for k in cpu_before},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    result_file("event-lag", "json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, result_file("event-lag", "md"))
    write_chart(report, result_file("event-lag", "png"))
    print(result_file("event-lag", "md").read_text())


if __name__ == "__main__":
    main()
