"""The Kubernetes dev loop as a developer lives it, under `make e2e-k8s`: `tilt up` of the
project's own Tiltfile on a real cluster, two replicas of each app 2/2, notifications in
`kubectl logs`, a source edit served by the running pods without a rebuild, a
dependency edit rebuilt.

scripts/e2e-k8s.sh runs Tilt in a copy of the repository (the edits below never touch a
developer's files) and passes:
    TASK_PLATFORM_TILT_DIR   that copy
    KUBECTL, KUBECONFIG      the cluster's kubectl and kubeconfig
"""

import os
import re
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest

from harness.kubernetes import app_pods, kubectl, ready_containers
from harness.processes import wait_until

pytestmark = pytest.mark.skipif(
    "TASK_PLATFORM_TILT_DIR" not in os.environ, reason="runs under `make e2e-k8s` (a cluster)"
)
APPS = ("task-api", "notification-service")
TASK_API = "http://127.0.0.1:8000"


REPLICAS = 2


def the_running_pods(app: str) -> list[dict[str, Any]] | None:
    """The app's replicas, once there are as many as k8s/ asks for and each is 2/2."""
    pods = app_pods(app)
    if len(pods) == REPLICAS and all(ready_containers(p) == (2, 2) for p in pods):
        return sorted(pods, key=lambda p: str(p["metadata"]["uid"]))
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
def test_each_replica_runs_beside_its_injected_sidecar(app: str) -> None:
    pods = the_running_pods(app)
    assert pods is not None, [(p["metadata"]["name"], ready_containers(p)) for p in app_pods(app)]
    for pod in pods:
        names = {c["name"] for c in pod["spec"]["containers"]}
        assert names == {app, "daprd"}
        # The project's daprd, built by Tilt and named in the pod's dapr.io/sidecar-image
        # annotation; the control plane's stock one under TASK_PLATFORM_DAPRD=stock.
        [sidecar] = [c["image"] for c in pod["spec"]["containers"] if c["name"] == "daprd"]
        project = re.search(r"task-platform[_/]daprd:tilt-", sidecar) is not None
        assert project == (os.environ.get("TASK_PLATFORM_DAPRD", "project") == "project"), sidecar
        ready_at = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        took = seconds_between(pod["metadata"]["creationTimestamp"], ready_at["lastTransitionTime"])
        print(f"{pod['metadata']['name']}: pod created to 2/2 in {took:.0f} s")


def test_created_tasks_show_up_once_in_notification_service_kubectl_logs() -> None:
    """As docs/deploy.md says to watch them: the logs of every replica (-l), each event in
    exactly one of them."""
    with api() as client:
        created = [client.post("/tasks", json={"title": f"Seen {uuid4()}"}) for _ in range(10)]
    assert all(c.status_code == 201 for c in created), [c.text for c in created]
    lines = [f"ACTIVITY task.created task={c.json()['id']}" for c in created]

    def logs() -> str:
        return kubectl(
            "logs", "-l", "app.kubernetes.io/name=notification-service",
            "-c", "notification-service", "--tail=-1", "--prefix",
        )  # fmt: skip

    wait_until(lambda: all(line in logs() for line in lines), timeout=30, what="the lines")
    log = logs()
    assert all(log.count(line) == 1 for line in lines)


def test_a_source_edit_is_served_by_the_running_pods_without_a_rebuild() -> None:
    before = the_running_pods("task-api")
    assert before is not None
    marker = f"live update {uuid4()}"
    source = Path(os.environ["TASK_PLATFORM_TILT_DIR"]) / "services/task-api/src/task_api/main.py"
    started = time.monotonic()
    edit(source, 'SUMMARY = "Tasks on Dapr state, pub/sub and secrets"', f'SUMMARY = "{marker}"')
    wait_until(lambda: openapi_summary() == marker, timeout=30, what="the edit to be served")
    print(f"live update: edit to served in {time.monotonic() - started:.1f} s")
    after = the_running_pods("task-api")
    assert after is not None
    assert [p["metadata"]["uid"] for p in after] == [p["metadata"]["uid"] for p in before], (
        "a pod was replaced"
    )
    assert {app_image(p, "task-api") for p in after} == {app_image(before[0], "task-api")}, (
        "the image was rebuilt"
    )


def test_a_dependency_edit_rebuilds_the_image() -> None:
    before = the_running_pods("task-api")
    assert before is not None
    manifest = Path(os.environ["TASK_PLATFORM_TILT_DIR"]) / "services/task-api/pyproject.toml"
    started = time.monotonic()
    manifest.write_text(manifest.read_text() + "\n# touched by make e2e-k8s\n")

    def rebuilt() -> bool:
        pods = the_running_pods("task-api")
        old_image = app_image(before[0], "task-api")
        return pods is not None and all(app_image(p, "task-api") != old_image for p in pods)

    wait_until(rebuilt, timeout=600, what="the new task-api image to run 2/2", interval=2)
    print(f"dependency edit to a rebuilt pod 2/2 in {time.monotonic() - started:.0f} s")
    wait_until(lambda: openapi_summary() is not None, timeout=60, what="task-api to answer")
