"""The Kubernetes dev loop as a developer lives it, under `make e2e-k8s`: `tilt up` of the
project's own Tiltfile on a real cluster, the pods 2/2, notifications in `kubectl logs`,
a source edit served by the running pod without a rebuild, a dependency edit rebuilt.

scripts/e2e-k8s.sh runs Tilt in a copy of the repository (the edits below never touch a
developer's files) and passes:
    TASK_PLATFORM_TILT_DIR   that copy
    KUBECTL, KUBECONFIG      the cluster's kubectl and kubeconfig
"""

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest

from harness.processes import wait_until

pytestmark = pytest.mark.skipif(
    "TASK_PLATFORM_TILT_DIR" not in os.environ, reason="runs under `make e2e-k8s` (a cluster)"
)
NAMESPACE = "task-platform"
APPS = ("task-api", "notification-service")
TASK_API = "http://127.0.0.1:8000"


def kubectl(*args: str) -> str:
    return subprocess.run(
        [os.environ["KUBECTL"], "-n", NAMESPACE, *args], check=True, capture_output=True, text=True
    ).stdout


def app_pods(app: str) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = json.loads(
        kubectl("get", "pods", "-l", f"app.kubernetes.io/name={app}", "-o", "json")
    )["items"]
    return [p for p in pods if p["metadata"].get("deletionTimestamp") is None]


def ready_containers(pod: dict[str, Any]) -> tuple[int, int]:
    statuses = pod["status"].get("containerStatuses", [])
    return sum(1 for s in statuses if s["ready"]), len(pod["spec"]["containers"])


def the_running_pod(app: str) -> dict[str, Any] | None:
    pods = app_pods(app)
    if len(pods) == 1 and ready_containers(pods[0]) == (2, 2):
        return pods[0]
    return None


def app_image(pod: dict[str, Any], app: str) -> str:
    [container] = [c for c in pod["spec"]["containers"] if c["name"] == app]
    return str(container["image"])


def seconds_between(start: str, end: str) -> float:
    parse = time.strptime
    return time.mktime(parse(end, "%Y-%m-%dT%H:%M:%SZ")) - time.mktime(
        parse(start, "%Y-%m-%dT%H:%M:%SZ")
    )


def api() -> httpx.Client:
    return httpx.Client(base_url=TASK_API, headers={"X-API-Key": "dev-task-api-key"}, timeout=10)


def openapi_summary() -> str | None:
    try:
        with api() as client:
            return str(client.get("/openapi.json").json()["info"]["summary"])
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize("app", APPS)
def test_each_app_runs_beside_its_injected_sidecar(app: str) -> None:
    pod = the_running_pod(app)
    assert pod is not None, [(p["metadata"]["name"], ready_containers(p)) for p in app_pods(app)]
    names = {c["name"] for c in pod["spec"]["containers"]}
    assert names == {app, "daprd"}
    ready_at = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    took = seconds_between(pod["metadata"]["creationTimestamp"], ready_at["lastTransitionTime"])
    print(f"{app}: pod created to 2/2 in {took:.0f} s")


def test_a_created_task_shows_up_in_notification_service_kubectl_logs() -> None:
    title = f"Seen in kubectl logs {uuid4()}"
    with api() as client:
        created = client.post("/tasks", json={"title": title})
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]

    def logged() -> bool:
        log = kubectl("logs", "deploy/notification-service", "-c", "notification-service")
        return f"ACTIVITY task.created task={task_id}" in log

    wait_until(logged, timeout=30, what="the ACTIVITY line in kubectl logs")


def test_a_source_edit_is_served_by_the_running_pod_without_a_rebuild() -> None:
    before = the_running_pod("task-api")
    assert before is not None
    marker = f"live update {uuid4()}"
    source = Path(os.environ["TASK_PLATFORM_TILT_DIR"]) / "services/task-api/src/task_api/main.py"
    started = time.monotonic()
    edit(source, 'summary="Tasks on Dapr state, pub/sub and secrets"', f'summary="{marker}"')
    wait_until(lambda: openapi_summary() == marker, timeout=30, what="the edit to be served")
    print(f"live update: edit to served in {time.monotonic() - started:.1f} s")
    after = the_running_pod("task-api")
    assert after is not None
    assert after["metadata"]["uid"] == before["metadata"]["uid"], "the pod was replaced"
    assert app_image(after, "task-api") == app_image(before, "task-api"), "the image was rebuilt"


def test_a_dependency_edit_rebuilds_the_image() -> None:
    before = the_running_pod("task-api")
    assert before is not None
    manifest = Path(os.environ["TASK_PLATFORM_TILT_DIR"]) / "services/task-api/pyproject.toml"
    started = time.monotonic()
    manifest.write_text(manifest.read_text() + "\n# touched by make e2e-k8s\n")

    def rebuilt() -> bool:
        pod = the_running_pod("task-api")
        return pod is not None and app_image(pod, "task-api") != app_image(before, "task-api")

    wait_until(rebuilt, timeout=600, what="a new task-api image to run 2/2", interval=2)
    print(f"dependency edit to a rebuilt pod 2/2 in {time.monotonic() - started:.0f} s")
    wait_until(lambda: openapi_summary() is not None, timeout=60, what="task-api to answer")
