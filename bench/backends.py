"""The backend profiles side by side: bench/results/backends.md from the results that
`make bench` and `make bench BACKEND=postgres-kafka` left (bench*.json, event-lag*.json).
A profile without results yet is left out."""

import json
from pathlib import Path
from typing import Any

from backend_profile import RESULTS, result_file

PROFILES = ("redis", "postgres-kafka")
CONNECTIONS = "32"


def load(name: str, profile: str) -> dict[str, Any] | None:
    path = result_file(name, "json", profile)
    return json.loads(path.read_text()) if path.exists() else None


def comparison() -> str:
    benches = {p: b for p in PROFILES if (b := load("bench", p))}
    lags = {p: e["result"] for p in PROFILES if (e := load("event-lag", p))}
    profiles = [p for p in PROFILES if p in benches or p in lags]
    lines = [
        "# Backend profiles side by side",
        "",
        "From bench.json / event-lag.json (redis) and their `-<profile>` siblings; "
        f"requests/s and p99 ms at {CONNECTIONS} connections, median of the runs.",
        "",
        "| scenario | " + " | ".join(f"{p} req/s | {p} p99 ms" for p in profiles) + " |",
        "|---|" + "---|---|" * len(profiles),
    ]
    scenarios = next(iter(benches.values()))["scenarios"] if benches else {}
    for name in scenarios:
        cells = []
        for profile in profiles:
            row = benches.get(profile, {}).get("scenarios", {}).get(name, {}).get(CONNECTIONS)
            cells += [str(row["rps"]), str(row["p99_ms"])] if row else ["", ""]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| quiet stack, create to notification | p50 ms | p99 ms |", "|---|---|---|"]
    for profile, bench in benches.items():
        e2e = bench["end_to_end"]
        lines.append(f"| {profile} | {e2e['p50_ms']} | {e2e['p99_ms']} |")
    lines += [
        "",
        "| event lag (wrk POST /tasks) | creates/s | lag p50 ms | lag p99 ms | lost "
        "| duplicated | refused |",
        "|---|---|---|---|---|---|---|",
    ]
    for profile, r in lags.items():
        lines.append(
            f"| {profile} | {r['api_rate']} | {r['lag_p50_ms']} | {r['lag_p99_ms']} | "
            f"{r['lost']} | {r['duplicated']} | {r['creates_refused']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    path: Path = RESULTS / "backends.md"
    path.write_text(comparison())
    print(path.read_text())


if __name__ == "__main__":
    main()
