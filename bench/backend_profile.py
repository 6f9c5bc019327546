"""Which backend profile a bench run measures (TASK_PLATFORM_BACKEND, as for the
harness; `make bench BACKEND=...` sets it) and where its results go: the redis profile's
as bench/results/<name>.<ext>, another profile's beside them as <name>-<profile>.<ext>."""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))

from harness.backends import selected_backend  # noqa: E402

RESULTS = REPO_ROOT / "bench" / "results"
BACKEND = selected_backend()


def result_file(name: str, extension: str, backend: str = BACKEND) -> Path:
    suffix = "" if backend == "redis" else f"-{backend}"
    return RESULTS / f"{name}{suffix}.{extension}"
