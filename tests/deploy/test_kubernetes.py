"""The Kubernetes manifests: valid for the API server and for Dapr's CRDs of the pinned
release, and built the way the contract asks."""

import shutil
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from harness.backends import PARTITIONS
from harness.deploy_tools import (
    app_configuration,
    by_kind,
    deploy_tools,
    kustomize_build,
    load_yaml_documents,
    versions,
)
from harness.resources import REPO_ROOT

KUBERNETES_VERSION = "1.33.0"
APPS = {"task-api": 8000, "notification-service": 8001}


def is_dapr(obj: dict[str, Any]) -> bool:
    return str(obj["apiVersion"]).startswith("dapr.io/")


def crd_schemas(crd_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for path in crd_dir.glob("*.yaml"):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def unknown_fields(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Fields the API server would reject under strict field validation."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found: list[str] = []
    if isinstance(value, dict):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if properties is not None and key in properties:
                found += unknown_fields(item, properties[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                found += unknown_fields(item, extra, f"{path}.{key}")
            elif properties is not None and extra is not True:
                found.append(f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            found += unknown_fields(item, schema["items"], f"{path}[{index}]")
    return found


def test_every_kubernetes_object_is_valid(k8s_objects: list[dict[str, Any]]) -> None:
    plain = [o for o in k8s_objects if not is_dapr(o)]
    assert {o["kind"] for o in plain} >= {
        "Namespace", "Deployment", "Service", "PersistentVolumeClaim", "Secret",
        "ServiceAccount", "Role", "RoleBinding",
    }  # fmt: skip
    for obj in plain:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_every_dapr_object_matches_the_crds_of_the_pinned_release(
    k8s_objects: list[dict[str, Any]],
) -> None:
    schemas = crd_schemas(deploy_tools().dapr_crds)
    dapr = [o for o in k8s_objects if is_dapr(o)]
    assert {o["kind"] for o in dapr} == {"Component", "Subscription", "Resiliency", "Configuration"}
    for obj in dapr:
        schema = schemas[(obj["apiVersion"], obj["kind"])]
        jsonschema.Draft7Validator(schema).validate(obj)
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        assert unknown_fields(obj, schema, name) == []


def test_the_strict_check_catches_a_misspelt_field() -> None:
    schemas = crd_schemas(deploy_tools().dapr_crds)
    subscription = {
        "apiVersion": "dapr.io/v2alpha1",
        "kind": "Subscription",
        "metadata": {"name": "x"},
        "spec": {
            "pubsubname": "pubsub",
            "topic": "t",
            "routes": {"default": "/"},
            "deadLetterTopc": "d",
        },
    }
    schema = schemas[("dapr.io/v2alpha1", "Subscription")]
    assert unknown_fields(subscription, schema, "s") == ["s.spec.deadLetterTopc"]


def test_everything_lands_in_one_namespace(k8s_objects: list[dict[str, Any]]) -> None:
    for obj in k8s_objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "task-platform", obj["metadata"]["name"]


@pytest.mark.parametrize("app", APPS)
def test_app_deployments_carry_dapr_annotations_probes_limits_and_hardening(
    k8s_objects: list[dict[str, Any]], app: str
) -> None:
    deployment = by_kind(k8s_objects, "Deployment")[app]
    pod = deployment["spec"]["template"]
    annotations = pod["metadata"]["annotations"]
    [container] = pod["spec"]["containers"]
    assert annotations["dapr.io/enabled"] == "true"
    assert annotations["dapr.io/app-id"] == app
    assert annotations["dapr.io/app-port"] == str(container["ports"][0]["containerPort"])
    assert container["ports"][0]["containerPort"] == APPS[app]
    assert annotations["dapr.io/config"] in by_kind(k8s_objects, "Configuration")
    assert "dapr.io/log-level" in annotations
    secrets = by_kind(k8s_objects, "Secret")
    assert annotations["dapr.io/api-token-secret"] in secrets
    assert annotations["dapr.io/app-token-secret"] in secrets
    for resource in ("cpu-request", "memory-request", "cpu-limit", "memory-limit"):
        assert f"dapr.io/sidecar-{resource}" in annotations
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert set(container["resources"]) == {"requests", "limits"}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    hardening = container["securityContext"]
    assert hardening["readOnlyRootFilesystem"] is True
    assert hardening["allowPrivilegeEscalation"] is False
    assert hardening["capabilities"]["drop"] == ["ALL"]
    service = by_kind(k8s_objects, "Service")[app]
    assert service["spec"]["ports"][0]["port"] == APPS[app]


def test_components_are_scoped_and_the_secret_store_is_kubernetes(
    k8s_objects: list[dict[str, Any]],
) -> None:
    components = by_kind(k8s_objects, "Component")
    assert set(components) == {"statestore", "pubsub", "outbox-pubsub", "secretstore"}
    assert components["secretstore"]["spec"]["type"] == "secretstores.kubernetes"
    # Both apps read the API key: task-api for /tasks, notification-service for its feed.
    assert components["secretstore"]["scopes"] == ["task-api", "notification-service"]
    for component in components.values():
        assert set(component["scopes"]) <= set(APPS)
    outbox = {m["name"]: m["value"] for m in components["statestore"]["spec"]["metadata"]}
    assert outbox["outboxPublishPubsub"] == "pubsub"
    assert outbox["outboxPublishTopic"] == "task-events"
    # The relay's internal topic on a pub/sub of its own: its own worker pool.
    assert outbox["outboxPubsub"] == "outbox-pubsub"
    assert components["outbox-pubsub"]["spec"]["type"] == "pubsub.redis"


def test_nobody_may_invoke_task_api(k8s_objects: list[dict[str, Any]]) -> None:
    access = app_configuration(k8s_objects, "task-api")["spec"]["accessControl"]
    assert access["defaultAction"] == "deny"
    assert not access.get("policies")


def test_only_task_api_may_invoke_and_only_its_two_methods(
    k8s_objects: list[dict[str, Any]],
) -> None:
    # Enforced by the called app's sidecar: notification-service's Configuration.
    access = app_configuration(k8s_objects, "notification-service")["spec"]["accessControl"]
    assert access["defaultAction"] == "deny"
    [policy] = access["policies"]
    assert policy["appId"] == "task-api"
    assert policy["defaultAction"] == "deny"
    assert policy["operations"] == [
        {"name": "/notify", "httpVerb": ["POST"], "action": "allow"},
        {"name": "/pipeline/lag", "httpVerb": ["GET"], "action": "allow"},
    ]


@pytest.mark.parametrize("app", APPS)
def test_the_secret_store_can_read_the_api_key_and_nothing_else(
    k8s_objects: list[dict[str, Any]], app: str
) -> None:
    """Dapr's Kubernetes secret store reads with the pod's service account: each app's
    may get the API key Secret (both check the key), and notification-service's nothing
    else."""
    assert by_kind(k8s_objects, "Secret")["task-api-key"]["stringData"]["task-api-key"]
    account = by_kind(k8s_objects, "Deployment")[app]["spec"]["template"]["spec"][
        "serviceAccountName"
    ]
    bound = [
        b["roleRef"]["name"]
        for b in by_kind(k8s_objects, "RoleBinding").values()
        if any(s["name"] == account for s in b["subjects"])
    ]
    rules = [r for name in bound for r in by_kind(k8s_objects, "Role")[name]["rules"]]
    key_reader = {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": ["task-api-key"],
        "verbs": ["get"],
    }
    assert key_reader in rules
    for rule in rules:
        assert rule["verbs"] == ["get"], (app, rule)
        assert rule.get("resourceNames"), (app, rule)
    if app == "notification-service":
        assert rules == [key_reader]


def test_redis_persists_with_append_only_on_a_claim(k8s_objects: list[dict[str, Any]]) -> None:
    redis = by_kind(k8s_objects, "Deployment")["redis"]["spec"]["template"]["spec"]
    assert "--appendonly" in redis["containers"][0]["args"]
    assert redis["volumes"][0]["persistentVolumeClaim"]["claimName"] in by_kind(
        k8s_objects, "PersistentVolumeClaim"
    )


def test_jaeger_runs_once_behind_its_service_probed_limited_and_hardened(
    k8s_objects: list[dict[str, Any]],
) -> None:
    deployment = by_kind(k8s_objects, "Deployment")["jaeger"]
    # One: its traces live in its memory.
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == f"jaegertracing/jaeger:{versions()['JAEGER_IMAGE_VERSION']}"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["otlp-grpc"] == 4317
    assert ports["query"] == 16686
    probe = container["readinessProbe"]["httpGet"]
    # The health check extension answers on 13133, at /status only.
    assert (ports.get(probe["port"], probe["port"]), probe["path"]) in {
        (16686, "/"),
        (13133, "/status"),
    }
    assert set(container["resources"]) == {"requests", "limits"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    hardening = container["securityContext"]
    assert hardening["readOnlyRootFilesystem"] is True
    assert hardening["allowPrivilegeEscalation"] is False
    assert hardening["capabilities"]["drop"] == ["ALL"]
    service = by_kind(k8s_objects, "Service")["jaeger"]
    assert {(p["name"], p["port"]) for p in service["spec"]["ports"]} == {
        ("otlp-grpc", 4317),
        ("query", 16686),
    }
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def collector_address(kustomization: Path) -> str:
    """The one collector address: the tracing ConfigMap's literal in kustomization.yaml."""
    generators = load_yaml_documents(kustomization)[0]["configMapGenerator"]
    [generator] = [g for g in generators if g["name"] == "tracing"]
    [address] = [
        str(literal).split("=", 1)[1]
        for literal in generator["literals"]
        if literal.startswith("collector-address=")
    ]
    return address


def tracing_targets(objects: list[dict[str, Any]]) -> dict[str, str]:
    """Where the rendered manifests send traces: each app's sidecar (its Configuration)
    and each app container (OTEL_EXPORTER_OTLP_ENDPOINT)."""
    deployments = by_kind(objects, "Deployment")
    found = {}
    for app in APPS:
        otel = app_configuration(objects, app)["spec"]["tracing"]["otel"]
        found[f"{app} sidecar"] = otel["endpointAddress"]
        [container] = deployments[app]["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        found[f"{app} app"] = env["OTEL_EXPORTER_OTLP_ENDPOINT"]
    return found


def test_apps_and_sidecars_send_every_trace_to_jaeger(k8s_objects: list[dict[str, Any]]) -> None:
    address = collector_address(REPO_ROOT / "k8s" / "kustomization.yaml")
    assert address == "jaeger:4317"
    assert tracing_targets(k8s_objects) == {
        "task-api sidecar": address,
        "task-api app": f"http://{address}",
        "notification-service sidecar": address,
        "notification-service app": f"http://{address}",
    }
    for app in APPS:
        tracing = app_configuration(k8s_objects, app)["spec"]["tracing"]
        assert tracing["samplingRate"] == "1"
        assert tracing["otel"]["protocol"] == "grpc"
        assert tracing["otel"]["isSecure"] is False
    # The address is the jaeger Service's OTLP gRPC port.
    host, port = address.split(":")
    service = by_kind(k8s_objects, "Service")[host]
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}
    # Only read while building: never applied to the cluster.
    assert "tracing" not in by_kind(k8s_objects, "ConfigMap")


def test_the_collector_address_is_set_in_one_place(tmp_path: Path) -> None:
    """What a user does to send traces to their own collector: change the one value."""
    copy = tmp_path / "k8s"
    shutil.copytree(REPO_ROOT / "k8s", copy)
    kustomization = copy / "kustomization.yaml"
    text = kustomization.read_text()
    literal = f"collector-address={collector_address(kustomization)}"
    assert text.count(literal) == 1
    kustomization.write_text(text.replace(literal, "collector-address=otel.observability:4317"))
    assert tracing_targets(kustomize_build(copy)) == {
        "task-api sidecar": "otel.observability:4317",
        "task-api app": "http://otel.observability:4317",
        "notification-service sidecar": "otel.observability:4317",
        "notification-service app": "http://otel.observability:4317",
    }


# Who may reach which port of which pod ("anyone" for a rule without `from`). The security
# section of docs/design.md lists the same flows.
DAPR_INTERNAL_GRPC = 50002
FLOWS = {
    ("task-api", 8000): "anyone",
    ("notification-service", 8001): "anyone",
    ("notification-service", DAPR_INTERNAL_GRPC): frozenset({"task-api"}),
    ("redis", 6379): frozenset(APPS),
    # Spans over OTLP gRPC, from each app and its sidecar (both in the app's pod).
    ("jaeger", 4317): frozenset(APPS),
}


def opened_flows(policies: dict[str, dict[str, Any]]) -> dict[tuple[str, int], object]:
    flows: dict[tuple[str, int], object] = {}
    for policy in policies.values():
        target = policy["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
        for rule in policy["spec"].get("ingress", []):
            sources: object = "anyone"
            if "from" in rule:
                sources = frozenset(
                    f["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for f in rule["from"]
                )
            for port in rule["ports"]:
                assert port["protocol"] == "TCP"
                assert (target, port["port"]) not in flows, "one rule per port"
                flows[(target, port["port"])] = sources
    return flows


def test_network_policies_deny_by_default_and_open_only_the_flows(
    k8s_objects: list[dict[str, Any]],
) -> None:
    policies = by_kind(k8s_objects, "NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress"],
    }
    assert opened_flows(policies) == FLOWS


def test_network_policies_open_the_ports_that_are_in_use(
    k8s_objects: list[dict[str, Any]],
) -> None:
    """Each opened app port is a port the pod's container listens on and its Service
    names; the Dapr port only where a sidecar is injected."""
    deployments = by_kind(k8s_objects, "Deployment")
    services = by_kind(k8s_objects, "Service")
    for pod, port in FLOWS:
        template = deployments[pod]["spec"]["template"]
        if port == DAPR_INTERNAL_GRPC:
            assert template["metadata"]["annotations"]["dapr.io/enabled"] == "true"
            continue
        [container] = template["spec"]["containers"]
        assert port in {p["containerPort"] for p in container["ports"]}, pod
        assert port in {p["port"] for p in services[pod]["spec"]["ports"]}, pod


# Dapr's injector puts the tokens named by these annotations on the daprd container only;
# the app must be given the same secrets itself (the SDK sends DAPR_API_TOKEN, the app
# checks APP_API_TOKEN), or daprd refuses it with 401 and the pod never becomes ready.
TOKEN_ANNOTATIONS = {
    "dapr.io/api-token-secret": "DAPR_API_TOKEN",
    "dapr.io/app-token-secret": "APP_API_TOKEN",
}


def secret_env(container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """The container's env entries that come from a Secret: name -> (secret, key)."""
    found = {}
    for entry in container.get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            found[entry["name"]] = (ref["name"], ref["key"])
    return found


def missing_tokens(deployment: dict[str, Any]) -> list[str]:
    template = deployment["spec"]["template"]
    annotations = template["metadata"].get("annotations", {})
    missing = []
    for container in template["spec"]["containers"]:
        given = secret_env(container)
        for annotation, variable in TOKEN_ANNOTATIONS.items():
            if annotation in annotations and given.get(variable) != (
                annotations[annotation],
                "token",
            ):
                missing.append(f"{container['name']}: {variable} from {annotations[annotation]}")
    return missing


def test_app_containers_get_the_tokens_their_sidecar_is_given(
    k8s_objects: list[dict[str, Any]],
) -> None:
    deployments = by_kind(k8s_objects, "Deployment")
    for app in APPS:
        assert set(TOKEN_ANNOTATIONS) <= set(
            deployments[app]["spec"]["template"]["metadata"]["annotations"]
        )
        assert missing_tokens(deployments[app]) == [], app


def test_the_token_check_catches_an_app_without_them() -> None:
    deployment = {
        "spec": {
            "template": {
                "metadata": {"annotations": {"dapr.io/api-token-secret": "dapr-api-token"}},
                "spec": {"containers": [{"name": "app", "env": []}]},
            }
        }
    }
    assert missing_tokens(deployment) == ["app: DAPR_API_TOKEN from dapr-api-token"]


def test_the_token_secrets_exist_with_a_token_key(k8s_objects: list[dict[str, Any]]) -> None:
    secrets = by_kind(k8s_objects, "Secret")
    for deployment in by_kind(k8s_objects, "Deployment").values():
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        for annotation in TOKEN_ANNOTATIONS:
            if annotation in annotations:
                assert "token" in secrets[annotations[annotation]]["stringData"]


# --- the postgres-kafka overlay (k8s-overlays/postgres-kafka/) --------------------------

SERVERS = {"postgres": 5432, "kafka": 9092}


def test_every_overlay_object_is_valid(overlay_objects: list[dict[str, Any]]) -> None:
    plain = [o for o in overlay_objects if not is_dapr(o)]
    assert {o["kind"] for o in plain} >= {"StatefulSet", "Service", "Secret", "NetworkPolicy"}
    for obj in plain:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    schemas = crd_schemas(deploy_tools().dapr_crds)
    for obj in overlay_objects:
        if is_dapr(obj):
            schema = schemas[(obj["apiVersion"], obj["kind"])]
            jsonschema.Draft7Validator(schema).validate(obj)
            assert unknown_fields(obj, schema, obj["metadata"]["name"]) == []


def by_id(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def without_env(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    copy = yaml.safe_load(yaml.safe_dump(deployment))
    for container in copy["spec"]["template"]["spec"]["containers"]:
        container["env"] = [e for e in container.get("env", []) if e["name"] != name]
    return dict(copy)


def test_the_overlay_is_k8s_with_postgres_and_kafka_in_place_of_redis(
    k8s_objects: list[dict[str, Any]], overlay_objects: list[dict[str, Any]]
) -> None:
    base, overlay = by_id(k8s_objects), by_id(overlay_objects)
    assert set(base) - set(overlay) == {
        ("Deployment", "redis"), ("Service", "redis"),
        ("PersistentVolumeClaim", "redis-data"), ("NetworkPolicy", "redis-ingress"),
    }  # fmt: skip
    assert set(overlay) - set(base) == {
        ("StatefulSet", "postgres"), ("Service", "postgres"), ("Secret", "postgres"),
        ("StatefulSet", "kafka"), ("Service", "kafka"), ("Job", "kafka-topics"),
        ("NetworkPolicy", "postgres-ingress"), ("NetworkPolicy", "kafka-ingress"),
    }  # fmt: skip
    changed = {key for key in set(base) & set(overlay) if base[key] != overlay[key]}
    assert changed == {
        ("Component", "statestore"), ("Component", "pubsub"), ("Component", "outbox-pubsub"),
        ("Deployment", "task-api"),
    }  # fmt: skip
    # task-api: its lag target only. Kafka's fetch and group latency come on top of the
    # outbox relay's second (docs/backends.md).
    lag = "TASK_API_EVENT_LAG_TARGET_SECONDS"
    task_api = overlay[("Deployment", "task-api")]
    assert without_env(task_api, lag) == without_env(base[("Deployment", "task-api")], lag)
    [container] = task_api["spec"]["template"]["spec"]["containers"]
    assert {"name": lag, "value": "3"} in container["env"]
    for obj in overlay_objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "task-platform", obj["metadata"]["name"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "task-platform"


@pytest.mark.parametrize("name", SERVERS)
def test_each_server_runs_once_behind_its_service_probed_limited_hardened_and_persistent(
    overlay_objects: list[dict[str, Any]], name: str
) -> None:
    statefulset = by_kind(overlay_objects, "StatefulSet")[name]
    assert statefulset["spec"]["replicas"] == 1
    pod = statefulset["spec"]["template"]["spec"]
    [container] = pod["containers"]
    pins = versions()
    assert (
        container["image"]
        == {
            "postgres": f"postgres:{pins['POSTGRES_IMAGE_VERSION']}-bookworm",
            "kafka": f"apache/kafka:{pins['KAFKA_VERSION']}",
        }[name]
    )
    assert [p["containerPort"] for p in container["ports"]] == [SERVERS[name]]
    assert "readinessProbe" in container
    assert "livenessProbe" in container
    assert set(container["resources"]) == {"requests", "limits"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    # No Service addresses in the environment: the kafka image would read KAFKA_PORT & co.
    # as broker settings.
    assert pod["enableServiceLinks"] is False
    hardening = container["securityContext"]
    assert hardening["readOnlyRootFilesystem"] is True
    assert hardening["allowPrivilegeEscalation"] is False
    assert hardening["capabilities"]["drop"] == ["ALL"]
    # Its data on a claim of its own, mounted where the image keeps it.
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert (
        mounts[claim["metadata"]["name"]]
        == {
            "postgres": "/var/lib/postgresql/data",
            "kafka": "/var/lib/kafka/data",
        }[name]
    )
    service = by_kind(overlay_objects, "Service")[statefulset["spec"]["serviceName"]]
    assert service["metadata"]["name"] == name
    assert service["spec"]["selector"] == statefulset["spec"]["selector"]["matchLabels"]
    assert [p["port"] for p in service["spec"]["ports"]] == [SERVERS[name]]


def env_of(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, dict[str, Any]]:
    [container] = by_kind(objects, kind)[name]["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container["env"]}


def test_the_postgres_password_is_one_secret_for_the_server_and_the_statestore(
    overlay_objects: list[dict[str, Any]],
) -> None:
    server = env_of(overlay_objects, "StatefulSet", "postgres")
    reference = server["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    store = {
        m["name"]: m
        for m in by_kind(overlay_objects, "Component")["statestore"]["spec"]["metadata"]
    }
    # Resolved by Dapr's operator from the Kubernetes Secret: no app reads it itself.
    assert store["password"] == {"name": "password", "secretKeyRef": reference}
    secret = by_kind(overlay_objects, "Secret")[reference["name"]]
    assert secret["stringData"][reference["key"]]
    assert store["host"]["value"] == "postgres"
    assert store["database"]["value"] == server["POSTGRES_DB"]["value"]
    probe = by_kind(overlay_objects, "StatefulSet")["postgres"]["spec"]["template"]["spec"][
        "containers"
    ][0]["readinessProbe"]["exec"]["command"]
    assert probe[probe.index("-d") + 1] == store["database"]["value"]


def test_kafka_advertises_its_service_and_makes_enough_partitions(
    overlay_objects: list[dict[str, Any]],
) -> None:
    environment = {
        k: v.get("value") for k, v in env_of(overlay_objects, "StatefulSet", "kafka").items()
    }
    components = by_kind(overlay_objects, "Component")
    for name in ("pubsub", "outbox-pubsub"):
        [brokers] = [
            m["value"] for m in components[name]["spec"]["metadata"] if m["name"] == "brokers"
        ]
        assert environment["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{brokers}"
    assert environment["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "true"
    assert environment["KAFKA_NUM_PARTITIONS"] == str(PARTITIONS)
    assert environment["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert environment["CLUSTER_ID"]
    # `kafka` has an address before the broker is ready: else a lookup made meanwhile
    # leaves its negative answer in the cluster DNS's cache, where the first sidecars find it.
    assert by_kind(overlay_objects, "Service")["kafka"]["spec"]["publishNotReadyAddresses"] is True


def test_the_overlay_opens_postgres_and_kafka_to_the_apps_and_kafka_to_its_topics_job(
    overlay_objects: list[dict[str, Any]],
) -> None:
    policies = by_kind(overlay_objects, "NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress"],
    }
    flows = {key: value for key, value in FLOWS.items() if key[0] != "redis"}
    flows[("postgres", 5432)] = frozenset(APPS)
    flows[("kafka", 9092)] = frozenset({*APPS, "kafka-topics"})
    assert opened_flows(policies) == flows


def test_the_topics_are_made_by_a_hardened_job_of_the_kafka_image(
    overlay_objects: list[dict[str, Any]],
) -> None:
    job = by_kind(overlay_objects, "Job")["kafka-topics"]
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    [kafka] = by_kind(overlay_objects, "StatefulSet")["kafka"]["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["image"] == kafka["image"]
    words = {word.strip('";') for word in " ".join(container["args"]).split()}
    topics = {"task-events", "task-events-dlq"} | {
        f"${{NAMESPACE}}{app}task-eventsoutbox" for app in APPS
    }
    assert topics <= words
    assert "--if-not-exists" in words
    env = {e["name"]: e for e in container["env"]}
    assert env["NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert set(container["resources"]) == {"requests", "limits"}
