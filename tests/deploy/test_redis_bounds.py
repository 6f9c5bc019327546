"""What keeps Redis from growing with every write, the same in every environment, and the
timeouts notification-service's exactly-once rests on, in step with the Resiliency
resources that set them."""

from typing import Any

import pytest

from harness.deploy_tools import load_yaml_documents
from harness.resources import REPO_ROOT
from notification_service.settings import Settings as NotificationSettings
from notification_service.timing import (
    DELIVERY_TIMEOUT_SECONDS,
    NOTIFY_CALL_TIMEOUT_SECONDS,
    AttemptTiming,
)

# Every place a Redis pub/sub component is defined: make up and the tests, docker
# compose, Kubernetes.
REDIS_PUBSUB_SOURCES = [
    "components/resources/pubsub.yaml",
    "components/resources/outbox-pubsub.yaml",
    "components/compose/resources/pubsub.yaml",
    "components/compose/resources/outbox-pubsub.yaml",
    "k8s/dapr/components.yaml",
]
# The caps, by component (see the reasoning in components/resources/*pubsub.yaml).
CAPS = {"pubsub": 100_000, "outbox-pubsub": 20_000}


def redis_pubsubs() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for source in REDIS_PUBSUB_SOURCES:
        for document in load_yaml_documents(REPO_ROOT / source):
            if document.get("kind") == "Component" and document["spec"]["type"] == "pubsub.redis":
                found.append((source, document))
    return found


def test_every_redis_pubsub_is_found() -> None:
    assert sorted((s, d["metadata"]["name"]) for s, d in redis_pubsubs()) == sorted(
        [
            ("components/resources/pubsub.yaml", "pubsub"),
            ("components/resources/outbox-pubsub.yaml", "outbox-pubsub"),
            ("components/compose/resources/pubsub.yaml", "pubsub"),
            ("components/compose/resources/outbox-pubsub.yaml", "outbox-pubsub"),
            ("k8s/dapr/components.yaml", "pubsub"),
            ("k8s/dapr/components.yaml", "outbox-pubsub"),
        ]
    )


@pytest.mark.parametrize(
    ("source", "component"),
    redis_pubsubs(),
    ids=[f"{s}:{d['metadata']['name']}" for s, d in redis_pubsubs()],
)
def test_every_redis_stream_is_trimmed_at_its_cap(source: str, component: dict[str, Any]) -> None:
    """Without maxLenApprox (or streamTTL) a stream keeps every entry: Redis grew by
    about 1.6 KB per write, forever. A count, not an age: it bounds the memory."""
    metadata = {m["name"]: m.get("value") for m in component["spec"]["metadata"]}
    assert metadata.get("maxLenApprox") == str(CAPS[component["metadata"]["name"]])
    # Dapr applies only one way of trimming.
    assert "streamTTL" not in metadata


def test_the_task_events_cap_is_above_what_a_dead_consumer_leaves_behind() -> None:
    """A dead consumer's messages are taken over after processingTimeout: every entry
    written meanwhile (at the ~440 writes/s two cores accept with nothing held back)
    must fit under the cap, or the oldest, still needed, would be trimmed."""
    fastest_writes_per_second = 440
    for source, component in redis_pubsubs():
        metadata = {m["name"]: m.get("value") for m in component["spec"]["metadata"]}
        timeout = metadata["processingTimeout"]
        assert timeout.endswith("s"), (source, timeout)
        written_meanwhile = int(timeout[:-1]) * fastest_writes_per_second
        workers = 2 * (int(metadata["concurrency"]) + int(metadata["queueDepth"]))
        assert int(metadata["maxLenApprox"]) > written_meanwhile + workers, source


def resiliency(path: str, name: str) -> dict[str, Any]:
    [found] = [d for d in load_yaml_documents(REPO_ROOT / path) if d["metadata"]["name"] == name]
    return found


def seconds(value: str) -> float:
    assert value.endswith("s"), value
    assert not value.endswith("ms"), value
    return float(value[:-1])


@pytest.mark.parametrize(
    "path",
    ["components/resources/resiliency.yaml", "k8s/dapr/resiliency.yaml"],
)
def test_notify_waits_within_task_apis_call_timeout(path: str) -> None:
    """notification-service answers a `notify` it is still recording with 503 before
    task-api's sidecar stops waiting, so that the sidecar hears it and retries."""
    policy = resiliency(path, "task-api-resiliency")
    assert seconds(policy["spec"]["policies"]["timeouts"]["notify"]) == NOTIFY_CALL_TIMEOUT_SECONDS
    assert AttemptTiming().notify_wait_seconds < NOTIFY_CALL_TIMEOUT_SECONDS


@pytest.mark.parametrize(
    "path",
    ["components/resources/notification-service-resiliency.yaml", "k8s/dapr/resiliency.yaml"],
)
def test_a_delivery_waits_within_its_timeout(path: str) -> None:
    policy = resiliency(path, "notification-service-resiliency")
    assert seconds(policy["spec"]["policies"]["timeouts"]["delivery"]) == DELIVERY_TIMEOUT_SECONDS
    assert AttemptTiming().delivery_wait_seconds < DELIVERY_TIMEOUT_SECONDS


def test_the_dedupe_ttl_outlives_every_redelivery_and_every_attempt() -> None:
    """A claim must live longer than the longest an attempt holds it and watches it,
    and longer than a redelivery takes: processingTimeout (30 s) and the delivery
    retries (about a minute). It is also what every write costs Redis for that long
    (docs/design.md, Redis' memory)."""
    ttl = NotificationSettings().dedupe_ttl_seconds
    timing = AttemptTiming(call_seconds=NotificationSettings().dapr_call_timeout_seconds)
    assert ttl > timing.watch_seconds + timing.hold_seconds
    assert ttl >= 5 * 60
