"""docker-compose.yml: valid against the Compose specification and wired as the
contract asks (a pinned daprd sidecar per app in the app's network namespace)."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.deploy_tools import versions
from harness.resources import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
APPS = {"task-api": 8000, "notification-service": 8001}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def test_the_file_is_valid_against_the_compose_spec() -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("app", APPS)
def test_each_app_has_a_pinned_sidecar_in_its_network_namespace(
    compose: dict[str, Any], app: str
) -> None:
    services = compose["services"]
    sidecar = services[f"{app}-dapr"]
    assert sidecar["image"] == f"daprio/daprd:{versions()['DAPR_RUNTIME_VERSION']}"
    assert sidecar["network_mode"] == f"service:{app}"
    command = sidecar["command"]
    assert command[command.index("--app-id") + 1] == app
    assert command[command.index("--app-port") + 1] == str(APPS[app])
    assert sidecar["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services[app]["depends_on"]["redis"]["condition"] == "service_healthy"
    # Published on the host's loopback only: nobody else on the host's networks.
    assert services[app]["ports"] == [f"127.0.0.1:{APPS[app]}:{APPS[app]}"]
    # The sidecar's API and metrics: its app only, never compose's network.
    for flag in ("--dapr-listen-addresses", "--metrics-listen-address"):
        assert command[command.index(flag) + 1] == "127.0.0.1", flag
    # Its internal gRPC port takes invocations from other sidecars without a token:
    # only notification-service is invoked (by task-api), so only its port is open.
    internal = "--dapr-internal-grpc-listen-address"
    assert (internal in command) == (app != "notification-service")
    if internal in command:
        assert command[command.index(internal) + 1] == "127.0.0.1"
    assert (
        services[app]["environment"]["DAPR_HTTP_PORT"]
        == command[command.index("--dapr-http-port") + 1]
    )


def test_sidecars_mount_resources_that_exist(compose: dict[str, Any]) -> None:
    for volume in compose["x-daprd"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (REPO_ROOT / source).exists(), source


def sidecar_configuration_file(compose: dict[str, Any], app: str) -> Path:
    """The Dapr Configuration file (in the repository) an app's sidecar is started with."""
    mounts = dict(v.split(":")[:2] for v in compose["x-daprd"]["volumes"])
    command = compose["services"][f"{app}-dapr"]["command"]
    config_file = Path(command[command.index("--config") + 1])
    [source] = [s for s, target in mounts.items() if Path(target) == config_file.parent]
    return REPO_ROOT / str(source) / config_file.name


def test_the_sidecars_hand_out_only_the_api_key_as_under_make_up(
    compose: dict[str, Any],
) -> None:
    for app in APPS:
        config_file = sidecar_configuration_file(compose, app)
        # Each sidecar gets its own app's Configuration from the mounted directory.
        assert config_file.name == f"{app}.yaml"
        scopes = yaml.safe_load(config_file.read_text())
        local = yaml.safe_load((REPO_ROOT / "components" / "config" / f"{app}.yaml").read_text())
        assert scopes["spec"]["secrets"] == local["spec"]["secrets"], app
        scopes = scopes["spec"]["secrets"]
        assert scopes["scopes"][0]["defaultAccess"] == "deny"


def test_jaeger_runs_the_pinned_image_with_only_its_query_port_on_loopback(
    compose: dict[str, Any],
) -> None:
    jaeger = compose["services"]["jaeger"]
    assert jaeger["image"] == f"jaegertracing/jaeger:{versions()['JAEGER_IMAGE_VERSION']}"
    # The UI and query API for the host's browser; OTLP stays on compose's network.
    assert jaeger["ports"] == ["127.0.0.1:16686:16686"]


@pytest.mark.parametrize("app", APPS)
def test_each_app_and_its_sidecar_send_every_trace_to_jaeger(
    compose: dict[str, Any], app: str
) -> None:
    services = compose["services"]
    tracing = yaml.safe_load(sidecar_configuration_file(compose, app).read_text())["spec"][
        "tracing"
    ]
    assert tracing["samplingRate"] == "1"
    assert tracing["otel"] == {
        "endpointAddress": "jaeger:4317",
        "isSecure": False,
        "protocol": "grpc",
    }
    # The app's own spans go to the same receiver (an OTLP endpoint is a URL).
    assert services[app]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4317"
    for service in (app, f"{app}-dapr"):
        assert services[service]["depends_on"]["jaeger"] == {"condition": "service_started"}


def test_redis_is_healthchecked_and_persistent(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert "healthcheck" in redis
    assert "--appendonly" in redis["command"]
    assert redis["volumes"][0].split(":")[0] in compose["volumes"]


def test_tokens_come_from_the_gitignored_env_file(compose: dict[str, Any]) -> None:
    assert ".env" in (REPO_ROOT / ".gitignore").read_text().split()
    example = (REPO_ROOT / ".env.example").read_text()
    for name in ("DAPR_API_TOKEN", "APP_API_TOKEN"):
        assert f"{name}=" in example
        for service in ("task-api", "task-api-dapr", "notification-service-dapr"):
            assert compose["services"][service]["environment"][name].startswith(f"${{{name}:?")
