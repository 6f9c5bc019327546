"""Where a route's time goes: task-api (and notification-service) under wrk load, sampled
with py-spy, with each process's CPU per request.

Starts the real stack (the integration harness) with or without tracing as the services
ship it, creates a pool of tasks, then runs wrk against one route while py-spy samples
the apps. Writes bench/results/profiles/<route>-tracing-<on|off>.md: the CPU
milliseconds per request of every process, and each app's top frames by own time and
by time including callees.

    uv run python bench/profile.py --route get --tracing on --seconds 15
"""

import argparse
import asyncio
import collections
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))

from workload import prepare, run_wrk, scenarios  # noqa: E402

from harness.processes import ManagedProcess, stop_leftovers  # noqa: E402
from harness.stack import Stack  # noqa: E402

OUT = REPO_ROOT / "bench" / "results" / "profiles"
PY_SPY = Path(sys.executable).with_name("py-spy")
# --route: the scenario of bench/workload.py it runs.
ROUTES = {"get": "GET /tasks/{id}", "post": "POST /tasks", "put": "PUT /tasks/{id}/status"}
TOP = 25


def top_frames(collapsed: Path) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """Own and inclusive share of the samples per frame, from py-spy's raw output."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if total == 0:
        return [], []

    def shares(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(frame, 100 * n / total) for frame, n in counter.most_common(TOP)]

    return shares(own), shares(inclusive)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--route", choices=sorted(ROUTES), default="get")
    parser.add_argument("--tracing", choices=("on", "off"), default="on")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    name = f"{args.route}-tracing-{args.tracing}"
    OUT.mkdir(parents=True, exist_ok=True)
    stop_leftovers()
    stack = Stack(Path(tempfile.mkdtemp(prefix="profile-")), tracing=args.tracing == "on")
    try:
        stack.start()
        ids, event = asyncio.run(prepare(stack))
        scenario = {s.name: s for s in scenarios()}[ROUTES[args.route]]
        apps = [stack.task_api.app, stack.notification_service.app]
        samplers = []
        for app in apps:
            assert app is not None
            raw = Path(stack.workdir) / f"{app.name}.collapsed"
            samplers.append(
                (
                    app,
                    raw,
                    subprocess.Popen(
                        [
                            str(PY_SPY), "record", "--pid", str(app.pid), "--rate", "250",
                            "--duration", str(args.seconds), "--nonblocking",
                            "--format", "raw", "--output", str(raw),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    ),
                )
            )  # fmt: skip
        processes: list[ManagedProcess] = list(stack.processes)
        before = {p.name: p.cpu_seconds() for p in processes}
        started = time.monotonic()
        result = run_wrk(stack, scenario, ids, event, args.connections, args.seconds)
        elapsed = time.monotonic() - started
        after = {p.name: p.cpu_seconds() for p in processes}
        for _, _, sampler in samplers:
            sampler.wait(timeout=60)
        requests = int(result["requests"])
        lines = [
            f"# Profile: {scenario.name}, tracing {args.tracing}",
            "",
            f"{time.strftime('%Y-%m-%d %H:%M')}, wrk {args.connections} connections for "
            f"{args.seconds} s: {requests} requests, {requests / elapsed:.0f} req/s; py-spy at "
            "250 Hz (non-blocking) on both apps.",
            "",
            "| process | CPU ms per request | CPU cores used |",
            "|---|---|---|",
        ]
        for process in processes:
            used = after[process.name] - before[process.name]
            lines.append(
                f"| {process.name} | {1000 * used / max(requests, 1):.3f} | {used / elapsed:.2f} |"
            )
        for app, raw, _ in samplers:
            own, inclusive = top_frames(raw)
            lines += [
                "",
                f"## {app.name}: top frames by own time",
                "",
                "| % | frame |",
                "|---|---|",
            ]
            lines += [f"| {share:.1f} | `{frame}` |" for frame, share in own]
            lines += ["", f"## {app.name}: top frames including callees", "", "| % | frame |"]
            lines += ["|---|---|"] + [f"| {share:.1f} | `{frame}` |" for frame, share in inclusive]
        (OUT / f"{name}.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines[:20]))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
