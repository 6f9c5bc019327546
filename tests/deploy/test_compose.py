"""docker-compose.yml: valid against the Compose specification and wired as the
contract asks (a pinned daprd sidecar per app in the app's network namespace); with
docker-compose.postgres-kafka.yml over it, the same on PostgreSQL and Kafka."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.compose_model import (
    ComposeLoader,
    check_against_the_compose_spec,
    compose_merge,
    compose_model,
)
from harness.backends import PARTITIONS
from harness.deploy_tools import load_yaml_documents, versions
from harness.resources import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
POSTGRES_KAFKA_FILE = REPO_ROOT / "docker-compose.postgres-kafka.yml"
APPS = {"task-api": 8000, "notification-service": 8001}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def test_the_file_is_valid_against_the_compose_spec() -> None:
    check_against_the_compose_spec(COMPOSE_FILE)


# --- docker compose -f docker-compose.yml -f docker-compose.postgres-kafka.yml ----------


@pytest.fixture(scope="module")
def postgres_kafka() -> dict[str, Any]:
    """The model compose runs for the postgres-kafka profile."""
    return compose_model(POSTGRES_KAFKA_FILE.name)


def test_the_merge_follows_compose_rules() -> None:
    base = {"s": {"command": ["a"], "volumes": ["./x:/t:ro", "./y:/u"], "env": {"A": "1"}}}
    other = yaml.load(
        "s:\n  command: [b]\n  volumes: ['./z:/t:ro']\n  env: {B: '2'}\n"
        "  depends_on: !override {c: {condition: x}}\nr: !reset null\n",
        Loader=ComposeLoader,  # noqa: S506
    )
    assert compose_merge({**base, "r": {}}, other) == {
        "s": {
            "command": ["b"],
            "volumes": ["./z:/t:ro", "./y:/u"],
            "env": {"A": "1", "B": "2"},
            "depends_on": {"c": {"condition": "x"}},
        }
    }


def test_the_postgres_kafka_stack_is_valid_against_the_compose_spec(
    postgres_kafka: dict[str, Any], tmp_path: Path
) -> None:
    merged = tmp_path / "docker-compose.merged.yml"
    merged.write_text(yaml.safe_dump(postgres_kafka))
    check_against_the_compose_spec(merged)


def test_postgres_and_kafka_run_in_place_of_redis(
    compose: dict[str, Any], postgres_kafka: dict[str, Any]
) -> None:
    services = postgres_kafka["services"]
    assert set(services) == set(compose["services"]) - {"redis"} | {
        "postgres",
        "kafka",
        "kafka-topics",
    }
    assert set(postgres_kafka["volumes"]) == {"postgres-data", "kafka-data"}
    pins = versions()
    assert services["postgres"]["image"] == f"postgres:{pins['POSTGRES_IMAGE_VERSION']}-bookworm"
    assert services["kafka"]["image"] == f"apache/kafka:{pins['KAFKA_VERSION']}"
    for name in ("postgres", "kafka"):
        server = services[name]
        # On compose's network only, as Redis was.
        assert "ports" not in server, name
        assert server["healthcheck"]["test"][0] == "CMD", name
        [volume] = server["volumes"]
        assert volume.split(":")[0] in postgres_kafka["volumes"], name
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= set(services), name


@pytest.mark.parametrize("app", APPS)
def test_each_sidecar_loads_the_profile_components_once_both_servers_are_healthy(
    compose: dict[str, Any], postgres_kafka: dict[str, Any], app: str
) -> None:
    services = postgres_kafka["services"]
    sidecar = services[f"{app}-dapr"]

    def mounts(volumes: list[str]) -> dict[str, str]:
        return {volume.split(":")[1]: volume.split(":")[0] for volume in volumes}

    loaded = mounts(sidecar["volumes"])
    assert loaded["/dapr/resources"] == "./components/compose/postgres-kafka"
    assert (
        loaded["/dapr/shared/secretstore.yaml"] == "./components/compose/resources/secretstore.yaml"
    )
    # Everything else as in docker-compose.yml: subscriptions, resiliency, secrets, config.
    base = mounts(compose["services"][f"{app}-dapr"]["volumes"])
    assert {t: s for t, s in loaded.items() if t in base and t != "/dapr/resources"} == {
        t: s for t, s in base.items() if t != "/dapr/resources"
    }
    components = set()
    for target, source in loaded.items():
        assert (REPO_ROOT / source).exists(), source
        if target.startswith(("/dapr/resources", "/dapr/shared")):
            files = sorted((REPO_ROOT / source).glob("*.yaml")) or [REPO_ROOT / source]
            components |= {
                d["metadata"]["name"]
                for f in files
                for d in load_yaml_documents(f)
                if d["kind"] == "Component"
            }
    assert components == {"statestore", "pubsub", "outbox-pubsub", "secretstore"}
    for service in (app, f"{app}-dapr"):
        depends_on = services[service]["depends_on"]
        assert depends_on["postgres"] == depends_on["kafka"] == {"condition": "service_healthy"}
    assert sidecar["depends_on"]["kafka-topics"] == {"condition": "service_completed_successfully"}
    assert sidecar["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


def test_the_second_sidecar_starts_once_the_first_has_created_the_tables(
    postgres_kafka: dict[str, Any],
) -> None:
    """state.postgresql creates its tables as its sidecar starts; two at once race, and one
    exits. task-api answers /ready (its healthcheck) only once its sidecar is up."""
    depends_on = postgres_kafka["services"]["notification-service-dapr"]["depends_on"]
    assert depends_on["task-api"] == {"condition": "service_healthy"}
    assert "notification-service-dapr" not in postgres_kafka["services"]["task-api-dapr"].get(
        "depends_on", {}
    )


def compose_component(name: str) -> dict[str, Any]:
    [component] = load_yaml_documents(
        REPO_ROOT / "components" / "compose" / "postgres-kafka" / f"{name}.yaml"
    )
    return component


def metadata_items(component: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in component["spec"]["metadata"]}


def test_the_postgres_password_comes_from_env_for_both_server_and_sidecars(
    postgres_kafka: dict[str, Any],
) -> None:
    postgres = postgres_kafka["services"]["postgres"]
    assert postgres["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert "POSTGRES_PASSWORD=" in (REPO_ROOT / ".env.example").read_text()
    store = metadata_items(compose_component("statestore"))
    # Read by daprd from its environment, never written in the component file.
    assert store["password"] == {"name": "password", "envRef": "POSTGRES_PASSWORD"}
    assert store["host"]["value"] == "postgres"
    assert store["user"]["value"] == postgres["environment"].get("POSTGRES_USER", "postgres")
    database = store["database"]["value"]
    assert postgres["environment"]["POSTGRES_DB"] == database
    check = postgres["healthcheck"]["test"]
    assert check[check.index("-d") + 1] == database


def test_kafka_advertises_the_components_address_and_makes_enough_partitions(
    postgres_kafka: dict[str, Any],
) -> None:
    environment = postgres_kafka["services"]["kafka"]["environment"]
    for name in ("pubsub", "outbox-pubsub"):
        brokers = metadata_items(compose_component(name))["brokers"]["value"]
        assert environment["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{brokers}"
    # As many as the harness's broker gives every topic: the outbox relays about one event
    # per second per partition of its internal topic.
    assert environment["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "true"
    assert environment["KAFKA_NUM_PARTITIONS"] == str(PARTITIONS)
    assert environment["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert environment["CLUSTER_ID"]


def test_the_topics_are_made_before_any_sidecar_starts(postgres_kafka: dict[str, Any]) -> None:
    """Each with the broker's partitions, not on a first publish (where making 128 took
    longer than Dapr's producer waits): the subscriptions' topics and the outbox's internal
    ones, named as Dapr names them (<namespace><app-id><topic>outbox; "default" outside
    Kubernetes)."""
    services = postgres_kafka["services"]
    job = services["kafka-topics"]
    assert job["image"] == services["kafka"]["image"]
    assert job["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    script = " ".join(job["command"]).split()
    subscriptions = load_yaml_documents(
        REPO_ROOT / "components" / "resources" / "subscriptions.yaml"
    )
    published = metadata_items(compose_component("statestore"))["outboxPublishTopic"]["value"]
    topics = {s["spec"]["topic"] for s in subscriptions} | {
        f"default{app}{published}outbox" for app in APPS
    }
    assert topics <= {word.strip('";') for word in script}
    assert "--if-not-exists" in script


def test_task_api_runs_with_the_lag_target_of_the_profile(postgres_kafka: dict[str, Any]) -> None:
    environment = postgres_kafka["services"]["task-api"]["environment"]
    assert environment["TASK_API_EVENT_LAG_TARGET_SECONDS"] == "3"


@pytest.mark.parametrize("app", APPS)
def test_each_app_has_a_pinned_sidecar_in_its_network_namespace(
    compose: dict[str, Any], app: str
) -> None:
    services = compose["services"]
    sidecar = services[f"{app}-dapr"]
    # The project's daprd (tests/deploy/test_daprd_image.py checks its build and the switch
    # to stock).
    assert sidecar["image"] == f"task-platform/daprd:{versions()['DAPRD_IMAGE_TAG']}"
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
