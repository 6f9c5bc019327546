"""The Tiltfile, evaluated by a real tilt (`tilt alpha tiltfile-result`).

There is no cluster here: kubectl is replaced by a stand-in that answers the one
question the Tiltfile asks the cluster (is Dapr's CRD there?); kustomize is real.
"""

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.deploy_tools import deploy_tools, versions
from harness.resources import REPO_ROOT

APPS = {"task-api": 8000, "notification-service": 8001}
DAPR_RESOURCES = {
    "statestore", "pubsub", "outbox-pubsub", "secretstore",
    "task-api-config", "notification-service-config", "task-api-resiliency",
    "notification-service-resiliency", "notification-service-task-events",
    "notification-service-dead-letters", "task-api-task-completed",
}  # fmt: skip


def fake_kubectl(bin_dir: Path, crd_answer: str, exit_code: int = 0) -> None:
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(f'#!/bin/sh\nprintf "%s" "{crd_answer}"\nexit {exit_code}\n')
    kubectl.chmod(0o755)
    (bin_dir / "kustomize").symlink_to(deploy_tools().kustomize)


def evaluate(bin_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The Tiltfile's result; `args` are what follows `--` on `tilt up`'s command line."""
    return subprocess.run(
        [str(deploy_tools().tilt), "alpha", "tiltfile-result", "-f", "Tiltfile", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            # (Settings the Tiltfile reads from the environment: the defaults here.)
            **{k: v for k, v in os.environ.items() if k not in ("BACKEND", "TASK_PLATFORM_DAPRD")},
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "KUBECONFIG": "/dev/null",
        },
    )


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    bin_dir = tmp_path_factory.mktemp("bin")
    fake_kubectl(bin_dir, "customresourcedefinition.apiextensions.k8s.io/components.dapr.io")
    run = evaluate(bin_dir)
    assert run.returncode == 0, run.stderr
    loaded: dict[str, Any] = json.loads(run.stdout)
    return loaded


def manifest(result: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [m for m in result["Manifests"] if m["Name"] == name]
    assert len(found) == 1, name
    return found[0]


def image_targets(resource: dict[str, Any], image: str) -> list[dict[str, Any]]:
    return [t for t in resource["ImageTargets"] if t["selector"] == image]


def deployment(resource: dict[str, Any]) -> dict[str, Any]:
    [found] = [
        o
        for o in yaml.safe_load_all(resource["DeployTarget"]["yaml"])
        if o and o["kind"] == "Deployment"
    ]
    return dict(found)


def test_every_app_redis_jaeger_and_dapr_resource_is_a_tilt_resource(
    result: dict[str, Any],
) -> None:
    names = {m["Name"] for m in result["Manifests"]}
    assert {*APPS, "redis", "jaeger"} | DAPR_RESOURCES <= names


def test_jaegers_query_port_is_forwarded(result: dict[str, Any]) -> None:
    found = manifest(result, "jaeger")
    [forward] = found["DeployTarget"]["portForwardTemplateSpec"]["forwards"]
    assert (forward["localPort"], forward["containerPort"]) == (16686, 16686)
    assert found["Labels"] == {"infrastructure": "infrastructure"}


@pytest.mark.parametrize("app", APPS)
def test_images_are_built_from_the_repo_with_live_update(result: dict[str, Any], app: str) -> None:
    [image] = image_targets(manifest(result, app), f"task-platform/{app}")
    build = image["BuildDetails"]
    assert Path(build["context"]) == REPO_ROOT
    assert build["dockerfileContents"] == (REPO_ROOT / "services" / app / "Dockerfile").read_text()
    spec = image["LiveUpdateSpec"]
    for sync in spec["syncs"]:
        assert (REPO_ROOT / sync["localPath"]).is_dir(), sync
        assert sync["containerPath"] == "/app/" + sync["localPath"]
    # Every library the image copies is synced, reloaded from and rebuilt on a change of
    # its manifest, like the service itself.
    dockerfile = (REPO_ROOT / "services" / app / "Dockerfile").read_text()
    libs = set(re.findall(r"^COPY (libs/[^/\s]+)/src ", dockerfile, re.M))
    assert "libs/dapr-service-kit" in libs
    sources = {f"services/{app}/src"} | {f"{lib}/src" for lib in libs}
    assert {s["localPath"] for s in spec["syncs"]} == sources
    stops = set(spec["stopPaths"])
    manifests = {f"{lib}/pyproject.toml" for lib in libs}
    assert {"pyproject.toml", "uv.lock", f"services/{app}/pyproject.toml"} | manifests <= stops
    command = image["overrideCommand"]["command"]
    assert "--reload" in command
    reload_dirs = {command[i + 1] for i, arg in enumerate(command) if arg == "--reload-dir"}
    assert reload_dirs == {"/app/" + source for source in sources}


@pytest.mark.parametrize("app", APPS)
def test_port_forwards_and_dependencies(result: dict[str, Any], app: str) -> None:
    found = manifest(result, app)
    [forward] = found["DeployTarget"]["portForwardTemplateSpec"]["forwards"]
    assert (forward["localPort"], forward["containerPort"]) == (APPS[app], APPS[app])
    assert found["ResourceDependencies"] == ["redis"]
    assert found["Labels"] == {"services": "services"}


@pytest.mark.parametrize("app", APPS)
def test_only_the_read_only_root_is_relaxed_for_live_update(
    result: dict[str, Any], app: str
) -> None:
    [container] = deployment(manifest(result, app))["spec"]["template"]["spec"]["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": False,
        "capabilities": {"drop": ["ALL"]},
    }


def test_a_cluster_without_dapr_gets_a_clear_message(tmp_path: Path) -> None:
    fake_kubectl(tmp_path, "")
    run = evaluate(tmp_path)
    assert run.returncode != 0
    assert "dapr init -k --wait --runtime-version" in run.stderr


def test_an_unreachable_cluster_gets_a_clear_message(tmp_path: Path) -> None:
    fake_kubectl(tmp_path, "", exit_code=1)
    run = evaluate(tmp_path)
    assert run.returncode != 0
    assert "Cannot reach the cluster" in run.stderr


def test_the_backend_setting_deploys_the_postgres_kafka_overlay(tmp_path: Path) -> None:
    fake_kubectl(tmp_path, "customresourcedefinition.apiextensions.k8s.io/components.dapr.io")
    run = evaluate(tmp_path, "--", "--backend=postgres-kafka")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    names = {m["Name"] for m in result["Manifests"]}
    assert {*APPS, "postgres", "kafka", "jaeger"} | DAPR_RESOURCES <= names
    assert "redis" not in names
    for app in APPS:
        assert manifest(result, app)["ResourceDependencies"] == [
            "postgres",
            "kafka",
            "kafka-topics",
        ]
    for server in ("postgres", "kafka", "kafka-topics"):
        assert manifest(result, server)["Labels"] == {"infrastructure": "infrastructure"}
    deployed = [
        o for o in yaml.safe_load_all(manifest(result, "postgres")["DeployTarget"]["yaml"]) if o
    ]
    assert {o["kind"] for o in deployed} >= {"StatefulSet", "Service"}


def test_an_unknown_backend_is_refused_by_name(tmp_path: Path) -> None:
    fake_kubectl(tmp_path, "customresourcedefinition.apiextensions.k8s.io/components.dapr.io")
    run = evaluate(tmp_path, "--", "--backend=mysql")
    assert run.returncode != 0
    assert 'Unknown backend "mysql"' in run.stderr


SIDECAR_IMAGE = "dapr.io/sidecar-image"


@pytest.mark.parametrize("app", APPS)
def test_the_project_daprd_is_built_and_put_where_the_injector_reads_it(
    result: dict[str, Any], app: str
) -> None:
    """Like the apps' images: built by Tilt, pushed where they are, and its reference in the
    Deployment's dapr.io/sidecar-image annotation replaced by the pushed one."""
    resource = manifest(result, app)
    [daprd] = image_targets(resource, "task-platform/daprd")
    build = daprd["BuildDetails"]
    assert Path(build["context"]) == REPO_ROOT / "third_party" / "dapr"
    dockerfile = REPO_ROOT / "third_party" / "dapr" / "Dockerfile"
    assert build["dockerfileContents"] == dockerfile.read_text()
    # The README there is no reason to rebuild.
    assert {"basePath": build["context"], "patterns": ["*.md"]} in build["contextIgnores"]
    [locator] = resource["DeployTarget"]["imageLocators"]
    assert locator["objectSelector"]["kindRegexp"].endswith("Deployment")
    assert re.fullmatch(locator["objectSelector"]["nameRegexp"], app)
    assert locator["path"] == "{.spec.template.metadata.annotations.dapr\\.io/sidecar-image}"
    annotations = deployment(resource)["spec"]["template"]["metadata"]["annotations"]
    assert annotations[SIDECAR_IMAGE] == f"task-platform/daprd:{versions()['DAPRD_IMAGE_TAG']}"


def test_the_daprd_setting_leaves_the_sidecars_on_stock_daprd(tmp_path: Path) -> None:
    """The control plane's default sidecar image is stock daprd: no build, no annotation."""
    fake_kubectl(tmp_path, "customresourcedefinition.apiextensions.k8s.io/components.dapr.io")
    run = evaluate(tmp_path, "--", "--daprd=stock")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    for app in APPS:
        resource = manifest(result, app)
        assert [t["selector"] for t in resource["ImageTargets"]] == [f"task-platform/{app}"]
        assert not resource["DeployTarget"].get("imageLocators")
        annotations = deployment(resource)["spec"]["template"]["metadata"]["annotations"]
        assert SIDECAR_IMAGE not in annotations
        assert annotations["dapr.io/enabled"] == "true"


def test_an_unknown_daprd_is_refused_by_name(tmp_path: Path) -> None:
    fake_kubectl(tmp_path, "customresourcedefinition.apiextensions.k8s.io/components.dapr.io")
    run = evaluate(tmp_path, "--", "--daprd=patched")
    assert run.returncode != 0
    assert 'Unknown daprd "patched"' in run.stderr
