"""What must agree across dapr.yaml, components/, k8s/, docker-compose.yml, the
Tiltfile and the Python pins: app-ids, ports, component names, one Dapr version."""

import re
import tomllib
from typing import Any

import pytest

from harness.deploy_tools import load_yaml_documents, versions
from harness.resources import REPO_ROOT
from notification_service.settings import Settings as NotificationSettings
from task_api.settings import Settings as TaskApiSettings

APP_PORTS = {"task-api": 8000, "notification-service": 8001}
SIDECAR_HTTP_PORTS = {"task-api": 3500, "notification-service": 3501}
COMPONENT_NAMES = {"statestore", "pubsub", "outbox-pubsub", "secretstore"}
DAPR = versions()["DAPR_RUNTIME_VERSION"]


def resources(*paths: str) -> list[dict[str, Any]]:
    found = []
    for path in paths:
        for file in sorted((REPO_ROOT / path).glob("*.yaml")):
            found += load_yaml_documents(file)
    return found


def documentation() -> str:
    """The README and the pages it leads to (docs/, bench/README.md), where versions are named."""
    pages = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
    return "\n".join(page.read_text() for page in [*pages, REPO_ROOT / "bench" / "README.md"])


def names(objects: list[dict[str, Any]], kind: str) -> set[str]:
    return {o["metadata"]["name"] for o in objects if o["kind"] == kind}


def test_every_path_in_dapr_yaml_exists() -> None:
    """The CLI reads an app's paths relative to its appDirPath, the common ones relative
    to the run file: a wrong one stops `make up` before anything starts."""
    [run] = load_yaml_documents(REPO_ROOT / "dapr.yaml")
    common = run.get("common", {})
    for key in ("resourcesPath", "configFilePath"):
        if key in common:
            assert (REPO_ROOT / common[key]).exists(), common[key]
    for app in run["apps"]:
        app_dir = REPO_ROOT / app["appDirPath"]
        assert app_dir.is_dir(), app["appID"]
        for key in ("resourcesPath", "configFilePath"):
            if key in app:
                assert (app_dir / app[key]).exists(), (app["appID"], app[key])


def test_dapr_yaml_runs_the_spec_ports() -> None:
    [run] = load_yaml_documents(REPO_ROOT / "dapr.yaml")
    apps = {a["appID"]: a for a in run["apps"]}
    assert {a: apps[a]["appPort"] for a in apps} == APP_PORTS
    assert {a: apps[a]["daprHTTPPort"] for a in apps} == SIDECAR_HTTP_PORTS
    internal = [a["daprInternalGRPCPort"] for a in apps.values()]
    assert len(set(internal)) == len(internal), "internal gRPC ports must differ"


@pytest.mark.parametrize(
    "directory", ["components/resources", "components/compose/resources", "k8s/dapr"]
)
def test_every_environment_has_the_same_components(directory: str) -> None:
    objects = resources(directory)
    if directory == "components/compose/resources":
        objects += resources("components/resources")  # compose mounts the shared files too
    assert names(objects, "Component") >= COMPONENT_NAMES
    for obj in objects:
        assert set(obj.get("scopes", [])) <= set(APP_PORTS), obj["metadata"]["name"]


def test_services_use_the_component_names() -> None:
    assert TaskApiSettings().state_store == "statestore"
    assert TaskApiSettings().secret_store == "secretstore"
    assert TaskApiSettings().notification_app_id == "notification-service"
    assert NotificationSettings().state_store == "statestore"


@pytest.mark.parametrize(
    ("name", "kind"), [("subscriptions.yaml", "Subscription"), ("resiliency.yaml", "Resiliency")]
)
def test_subscriptions_and_resiliency_are_the_same_locally_and_in_kubernetes(
    name: str, kind: str
) -> None:
    """Locally each Resiliency has a file of its own (see the next test); Kubernetes
    takes them in one."""
    local = [d for d in resources("components/resources") if d["kind"] == kind]
    in_kubernetes = load_yaml_documents(REPO_ROOT / "k8s" / "dapr" / name)

    def by_name(d: dict[str, Any]) -> str:
        return str(d["metadata"]["name"])

    assert sorted(in_kubernetes, key=by_name) == sorted(local, key=by_name)


# Where a self-hosted daprd reads resources from: make up, the tests, docker compose.
LOCAL_RESOURCE_DIRECTORIES = [
    "components/resources",
    "components/postgres-kafka",
    "components/compose/resources",
    "components/compose/postgres-kafka",
]


@pytest.mark.parametrize("directory", LOCAL_RESOURCE_DIRECTORIES)
def test_a_local_resiliency_file_holds_nothing_else(directory: str) -> None:
    """A self-hosted daprd reads only the first document of a Resiliency file and drops
    the rest without a word (daprd 1.18.1, pkg/resiliency/resiliency.go,
    loadLocalResiliencyPath): notification-service's policy, second in a shared file,
    never applied, and a reset delivery went straight to the dead-letter topic."""
    for file in sorted((REPO_ROOT / directory).glob("*.yaml")):
        documents = load_yaml_documents(file)
        if any(d["kind"] == "Resiliency" for d in documents):
            assert len(documents) == 1, file.name


@pytest.mark.parametrize("app", ["task-api", "notification-service"])
def test_each_compose_sidecar_mounts_its_resiliency(app: str) -> None:
    [compose] = load_yaml_documents(REPO_ROOT / "docker-compose.yml")
    mounted = {volume.split(":")[0] for volume in compose["services"][f"{app}-dapr"]["volumes"]}
    for file in sorted((REPO_ROOT / "components" / "resources").glob("*.yaml")):
        for document in load_yaml_documents(file):
            if document["kind"] == "Resiliency" and app in document.get("scopes", []):
                assert f"./components/resources/{file.name}" in mounted, file.name


def test_one_dapr_version_everywhere() -> None:
    for project_dir in ("services/task-api", "services/notification-service"):
        project = tomllib.loads((REPO_ROOT / project_dir / "pyproject.toml").read_text())
        pins = {
            d.split("==")[0]: d.split("==")[1]
            for d in project["project"]["dependencies"]
            if "==" in d
        }
        assert pins == {"dapr": DAPR}, project_dir
    kit = tomllib.loads((REPO_ROOT / "libs/dapr-service-kit/pyproject.toml").read_text())
    assert f"dapr=={DAPR}" in kit["project"]["dependencies"]
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    locked = {p["name"]: p["version"] for p in lock["package"]}
    assert locked["dapr"] == DAPR
    assert "dapr-ext-fastapi" not in locked  # declared once and never imported
    # The project's daprd image carries the release's number first; stock daprd is one
    # override away.
    compose = (REPO_ROOT / "docker-compose.yml").read_text()
    assert not re.findall(r"daprio/daprd:\S+", compose)
    assert {tag.split("-")[0] for tag in re.findall(r"task-platform/daprd:(\S+)", compose)} == {
        DAPR
    }
    stock = (REPO_ROOT / "docker-compose.stock-daprd.yml").read_text()
    assert set(re.findall(r"daprio/daprd:(\S+)", stock)) == {DAPR}
    tiltfile = (REPO_ROOT / "Tiltfile").read_text()
    assert re.findall(r"DAPR_RUNTIME_VERSION = '([^']+)'", tiltfile) == [DAPR]
    assert f"--runtime-version {DAPR}" in tiltfile
    docs = documentation()
    assert set(re.findall(r"--runtime-version (\d+\.\d+\.\d+)", docs)) <= {DAPR}
    assert set(re.findall(r"daprd (\d+\.\d+\.\d+)", docs)) <= {DAPR}


# Each environment's daprd Configurations: components/config for `make up`,
# components/compose/config for docker-compose.yml, k8s/dapr for the cluster (there the
# address is kustomization.yaml's; tests/deploy/test_kubernetes.py checks the rendering).
@pytest.mark.parametrize(
    "directory", ["components/config", "components/compose/config", "k8s/dapr"]
)
def test_every_sidecar_traces_every_request_over_otlp(directory: str) -> None:
    configurations = {
        o["metadata"]["name"]: o for o in resources(directory) if o["kind"] == "Configuration"
    }
    assert len(configurations) == len(APP_PORTS)
    for name, configuration in configurations.items():
        tracing = configuration["spec"].get("tracing")
        assert tracing is not None, name
        # A string: Dapr reads it as a decimal ("1" = every request).
        assert tracing["samplingRate"] == "1", name
        otel = tracing["otel"]
        assert re.fullmatch(r"[\w.-]+:\d+", otel["endpointAddress"]), (name, otel)
        assert otel["protocol"] == "grpc", name
        assert otel["isSecure"] is False, name


def test_one_jaeger_version_everywhere() -> None:
    pins = versions()
    image = f"jaegertracing/jaeger:{pins['JAEGER_IMAGE_VERSION']}"
    compose = (REPO_ROOT / "docker-compose.yml").read_text()
    assert set(re.findall(r"jaegertracing/jaeger:\S+", compose)) == {image}
    k8s = (REPO_ROOT / "k8s" / "jaeger.yaml").read_text()
    assert set(re.findall(r"jaegertracing/jaeger:\S+", k8s)) == {image}
    # The binary of `make up` and of the image's local stand-in comes from the Go module,
    # which tags each release v1.N as well as v2.(N-63) (Jaeger's CHANGELOG: "v1.63.0 /
    # v2.0.0" ... "v1.76.0 / v2.13.0"): bumping one pin alone would mix two releases.
    module = [int(n) for n in pins["JAEGER_VERSION"].split(".")]
    release = [int(n) for n in pins["JAEGER_IMAGE_VERSION"].split(".")]
    assert (module[0], release[0]) == (1, 2)
    assert module[1] - 63 == release[1]


def test_the_tiltfile_names_the_apps_and_ports() -> None:
    tiltfile = (REPO_ROOT / "Tiltfile").read_text()
    for app, port in APP_PORTS.items():
        assert f"'{app}': ('{app.replace('-', '_')}', {port})" in tiltfile
        assert f"port_forwards=['{port}:{port}']" in tiltfile


def test_one_postgres_and_one_kafka_version_everywhere() -> None:
    """The postgres-kafka profile's images in the compose override and the Kubernetes
    overlay are versions.env's; KAFKA_VERSION is also the release whose jars the harness
    and the kafka stand-in run, and the PostgreSQL major is the one the stand-in and
    `make test-backends` run (Debian 12's)."""
    pins = versions()
    postgres = f"postgres:{pins['POSTGRES_IMAGE_VERSION']}-bookworm"
    kafka = f"apache/kafka:{pins['KAFKA_VERSION']}"
    files = [
        REPO_ROOT / "docker-compose.postgres-kafka.yml",
        *sorted((REPO_ROOT / "k8s-overlays").rglob("*.yaml")),
    ]
    text = "\n".join(path.read_text() for path in files)
    assert set(re.findall(r"\bpostgres:\d\S*", text)) == {postgres}
    assert set(re.findall(r"apache/kafka:\S+", text)) == {kafka}
    standin = (REPO_ROOT / "scripts" / "standin" / "postgres.Dockerfile").read_text()
    majors = set(re.findall(r"postgresql-(\d+)|postgresql/(\d+)/", standin))
    major = pins["POSTGRES_IMAGE_VERSION"].split(".")[0]
    assert {m for pair in majors for m in pair if m} == {major}
    docs = documentation()
    assert set(re.findall(r"PostgreSQL (\d{1,2})\b", docs)) <= {major}
    assert set(re.findall(r"Kafka (\d+\.\d+\.\d+)", docs)) <= {pins["KAFKA_VERSION"]}


# What may differ between the harness's postgres-kafka components (components/postgres-kafka,
# on its loopback servers) and the same profile in compose and Kubernetes: where the
# servers are and how the sidecar logs in. Everything else stays in step.
ADDRESS_AND_LOGIN = {"connectionString", "host", "port", "user", "database", "password", "brokers"}


def profile_settings(component: dict[str, Any]) -> dict[str, Any]:
    spec = component["spec"]
    return {
        "type": spec["type"],
        "version": spec["version"],
        "metadata": {
            m["name"]: m["value"] for m in spec["metadata"] if m["name"] not in ADDRESS_AND_LOGIN
        },
        "scopes": component.get("scopes"),
    }


def test_the_profile_components_are_the_harness_ones_in_compose_and_kubernetes(
    overlay_objects: list[dict[str, Any]],
) -> None:
    harness = {o["metadata"]["name"]: o for o in resources("components/postgres-kafka")}
    compose = {o["metadata"]["name"]: o for o in resources("components/compose/postgres-kafka")}
    kubernetes = {o["metadata"]["name"]: o for o in overlay_objects if o["kind"] == "Component"}
    assert set(harness) == set(compose) == {"statestore", "pubsub", "outbox-pubsub"}
    for name, component in harness.items():
        expected = profile_settings(component)
        assert profile_settings(compose[name]) == expected, name
        assert profile_settings(kubernetes[name]) == expected, name
    # The password is never in a component's own text there.
    for components in (compose, kubernetes):
        [password] = [
            m for m in components["statestore"]["spec"]["metadata"] if m["name"] == "password"
        ]
        assert "value" not in password
        assert {"envRef", "secretKeyRef"} & set(password)
