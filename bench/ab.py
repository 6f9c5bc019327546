"""Paired comparisons for `make bench`: the same wrk load on fresh stacks that differ in
one setting, alternating, median of the runs. Used for the routes with tracing off, as
shipped and the seed app (bench/routes.py), and for stock daprd against the project's
(the release plus third_party/dapr's fix)."""

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

from harness.stack import Stack

# A fresh, started stack for one variant's options; it stops when the block ends.
StackFactory = Callable[..., AbstractContextManager[Stack]]
# Runs one scenario's load on a stack of one variant (stack, scenario, variant): its
# wrk result (rps, p50_us, ..., errors).
Load = Callable[[Stack, str, str], dict[str, Any]]
Summary = Callable[[list[dict[str, Any]]], dict[str, Any]]


def compare(
    variants: Mapping[str, Mapping[str, Any]],
    scenarios: list[str],
    *,
    runs: int,
    stack: StackFactory,
    load: Load,
    summary: Summary,
    label: str,
    change: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Each scenario on each variant (name -> Stack options), `runs` times, alternating;
    the median per variant and the change of one variant's req/s against another's
    (`change`: base, other; default the last variant against the first)."""
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {variant: [] for variant in variants} for name in scenarios
    }
    for run in range(runs):
        for name in scenarios:
            for variant, options in variants.items():
                with stack(**options) as running:
                    result = load(running, name, variant)
                raw[name][variant].append(result)
                print(f"{label} {variant} run {run + 1} {name}: {result['rps']:.0f} req/s")
    first, *_, last = variants
    base_variant, other_variant = change or (first, last)
    table: dict[str, Any] = {}
    for name, by_variant in raw.items():
        row: dict[str, Any] = {variant: summary(results) for variant, results in by_variant.items()}
        base, other = row[base_variant]["rps"], row[other_variant]["rps"]
        row["rps_change_pct"] = round((other - base) / base * 100, 1) if base else None
        table[name] = row
    return {"variants": list(variants), "runs": runs, "scenarios": table}


def markdown(comparison: dict[str, Any], heading: str) -> Iterator[str]:
    """The comparison as a paragraph and a table of req/s and p99 per variant."""
    variants = comparison["variants"]
    yield heading
    yield ""
    yield (
        "| scenario | "
        + " | ".join(f"req/s {v}" for v in variants)
        + " | change | "
        + " | ".join(f"p99 ms {v}" for v in variants)
        + " |"
    )
    yield "|---|" + "---|" * (2 * len(variants) + 1)
    for name, row in comparison["scenarios"].items():
        rps = " | ".join(str(row[v]["rps"]) for v in variants)
        p99 = " | ".join(str(row[v]["p99_ms"]) for v in variants)
        yield f"| {name} | {rps} | {row['rps_change_pct']} % | {p99} |"
    yield ""
