"""The project's namespace on a cluster, for the tests that run under `make e2e-k8s`
(KUBECTL and KUBECONFIG come from scripts/e2e-k8s.sh)."""

import json
import os
import subprocess
from typing import Any

NAMESPACE = "task-platform"


def kubectl(*args: str) -> str:
    return subprocess.run(
        [os.environ["KUBECTL"], "-n", NAMESPACE, *args], check=True, capture_output=True, text=True
    ).stdout


def app_pods(app: str) -> list[dict[str, Any]]:
    """The app's pods that are not on their way out."""
    pods: list[dict[str, Any]] = json.loads(
        kubectl("get", "pods", "-l", f"app.kubernetes.io/name={app}", "-o", "json")
    )["items"]
    return [p for p in pods if p["metadata"].get("deletionTimestamp") is None]


def ready_containers(pod: dict[str, Any]) -> tuple[int, int]:
    """(ready, declared) containers, as kubectl's READY column shows them."""
    statuses = pod["status"].get("containerStatuses", [])
    return sum(1 for s in statuses if s["ready"]), len(pod["spec"]["containers"])
