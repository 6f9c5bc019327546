"""bench.md and bench.png of `make bench` from its report (bench.json)."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ab
from accounting import LAG_POLL

ROUTE_VARIANTS = ("off", "shipped", "seed")
ROLES = ("app", "sidecar", "pipeline", "total")
HATCHES = {"app": "", "sidecar": "//", "pipeline": ".."}


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
    if report.get("routes"):
        lines += routes_markdown(report["routes"], report["runs"])
    if report.get("daprd"):
        lines += ab.markdown(
            report["daprd"],
            f"The project's daprd against stock daprd: {report['daprd']['connections']} "
            f"connections, median of {report['runs']} runs, fresh stacks, no tracing; "
            "project = the pinned release plus third_party/dapr's fix to the outbox relay.",
        )
    path.write_text("\n".join(lines))


def _each(
    row: dict[str, Any], path: tuple[str, ...], variants: tuple[str, ...] = ROUTE_VARIANTS
) -> str:
    """One cell: a figure of each variant ("off / shipped / seed"), "-" where missing."""
    cells = []
    for variant in variants:
        value: Any = row[variant]
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        cells.append("-" if value is None else str(value))
    return " / ".join(cells)


def routes_markdown(routes: dict[str, Any], runs: int) -> Iterator[str]:
    lag = {
        name: row["shipped"].get("sidecar_calls", {}).get(LAG_POLL)
        for name, row in routes["scenarios"].items()
    }
    lag_text = ", ".join(f"{name} {value}" for name, value in lag.items() if value)
    yield (
        f"Routes: {routes['connections']} connections, median of {runs} runs, a fresh and "
        "cold stack each (so lower than the table above). off = no spans exported, as "
        "above; shipped = tracing as `make up` ships it (the sidecars' Configuration and "
        "the apps' defaults, to a Jaeger of the stack's own); seed = bench/seed_app.py, "
        "the naive reference (sync handlers, a new sync DaprClient per request, no "
        "tracing, no outbox, no auth), on the task-api sidecar of a tracing-off stack. "
        "Cells with three figures are off / shipped / seed. Ratio = req/s over the "
        "ceiling's in the table above at the same connections (state get for GET, "
        "transaction for POST and PUT). Sidecar calls = calls the app made to its "
        "sidecar per request (daprd's metrics, gRPC and HTTP API); for the writes they "
        "include task-api's lag poll, every 0.25 s while writes come"
        + (f" (shipped: {lag_text} per request)" if lag_text else "")
        + "; by method in bench.json. CPU = CPU ms per request of the app, its sidecar, "
        "the event pipeline (notification-service and its sidecar) and every process of "
        "the stack together (with Redis, Jaeger); events still queued when a run ends are "
        "not counted."
    )
    yield ""
    yield (
        "| route | req/s off | req/s shipped | req/s seed | shipped vs off | ratio to ceiling "
        "off / shipped | p99 ms | sidecar calls/req | CPU ms/req app | CPU ms/req sidecar | "
        "CPU ms/req pipeline | CPU ms/req total |"
    )
    yield "|---|" + "---|" * 11
    for name, row in routes["scenarios"].items():
        cpu = " | ".join(_each(row, ("cpu_ms_by_role", role)) for role in ROLES)
        yield (
            f"| {name} | {row['off']['rps']} | {row['shipped']['rps']} | {row['seed']['rps']} | "
            f"{row['rps_change_pct']} % | {_each(row, ('ratio',), ('off', 'shipped'))} | "
            f"{_each(row, ('p99_ms',))} | {_each(row, ('sidecar_calls_total',))} | {cpu} |"
        )
    errors = {
        n: sum(row[v]["errors"] for v in ROUTE_VARIANTS) for n, row in routes["scenarios"].items()
    }
    if any(errors.values()):
        yield ""
        yield "Errors (non-2xx, timeouts): " + ", ".join(f"{n} {e}" for n, e in errors.items())
    yield ""


def write_chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    routes = report.get("routes")
    figure, axes = plt.subplots(2 if routes else 1, 2, figsize=(13, 10 if routes else 5))
    throughput, tail = axes[0] if routes else axes
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
    if routes:
        _route_bars(axes[1][0], axes[1][1], routes)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _route_bars(rps: Any, cpu: Any, routes: dict[str, Any]) -> None:
    """req/s of each variant per route, and its CPU ms per request by role, stacked."""
    from matplotlib.patches import Patch

    names = list(routes["scenarios"])
    width = 0.8 / len(ROUTE_VARIANTS)
    for n, variant in enumerate(ROUTE_VARIANTS):
        x = [i + (n - 1) * width for i in range(len(names))]
        rows = [routes["scenarios"][name][variant] for name in names]
        rps.bar(x, [row["rps"] for row in rows], width, label=variant)
        bottom = [0.0] * len(names)
        for role, hatch in HATCHES.items():
            heights = [row.get("cpu_ms_by_role", {}).get(role, 0.0) for row in rows]
            cpu.bar(x, heights, width, bottom=bottom, hatch=hatch, color=f"C{n}", ec="white")
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        others = [
            row.get("cpu_ms_by_role", {}).get("total", 0.0) - b
            for row, b in zip(rows, bottom, strict=True)
        ]
        cpu.bar(x, others, width, bottom=bottom, color=f"C{n}", alpha=0.35)
    title = f"Routes at {routes['connections']} connections, fresh stacks"
    for axis in (rps, cpu):
        axis.set_xticks(range(len(names)), names, fontsize=8)
        axis.margins(y=0.2)
    rps.set(title=title, ylabel="requests/s")
    cpu.set(title="CPU ms per request, all processes", ylabel="ms")
    rps.legend(fontsize=7)
    # Colour = variant (as on the left), hatch = where the CPU went.
    roles = [Patch(fc="white", ec="grey", hatch=h or None, label=r) for r, h in HATCHES.items()]
    cpu.legend(handles=[*roles, Patch(fc="grey", alpha=0.35, label="other")], fontsize=7)
