"""The harness's Dapr resources: shortened timings must not break what the component's
own settings guarantee."""

from pathlib import Path

import yaml

from harness.resources import write_resources

# Dapr's outbox relay waits up to about this long for a transaction's commit marker
# before it gives a message up (see components/resources/pubsub.yaml).
OUTBOX_RELAY_WAIT_SECONDS = 11


def test_processing_timeout_outlasts_the_outbox_relay(tmp_path: Path) -> None:
    resources, _, _ = write_resources(
        tmp_path, backend="redis", addresses={"redisHost": "127.0.0.1:6379"}, other_secrets={}
    )
    [pubsub] = [
        d
        for d in yaml.safe_load_all((resources / "pubsub.yaml").read_text())
        if d and d["spec"]["type"].startswith("pubsub.")
    ]
    metadata = {m["name"]: m["value"] for m in pubsub["spec"]["metadata"]}
    assert int(metadata["processingTimeout"].removesuffix("s")) > OUTBOX_RELAY_WAIT_SECONDS


def test_a_profile_replaces_the_redis_components_of_the_same_names(tmp_path: Path) -> None:
    addresses = {"connectionString": "host=127.0.0.1 port=1", "brokers": "127.0.0.1:2"}
    resources, _, _ = write_resources(
        tmp_path, backend="postgres-kafka", addresses=addresses, other_secrets={}
    )
    components = {
        d["metadata"]["name"]: d
        for path in resources.glob("*.yaml")
        for d in yaml.safe_load_all(path.read_text())
        if d and d["kind"] == "Component"
    }
    assert {name: c["spec"]["type"] for name, c in components.items()} == {
        "statestore": "state.postgresql",
        "pubsub": "pubsub.kafka",
        "outbox-pubsub": "pubsub.kafka",
        "secretstore": "secretstores.local.file",
    }

    def metadata(name: str) -> dict[str, str]:
        return {m["name"]: m["value"] for m in components[name]["spec"]["metadata"]}

    assert metadata("statestore")["connectionString"] == addresses["connectionString"]
    assert metadata("statestore")["outboxPubsub"] == "outbox-pubsub"
    assert metadata("pubsub")["brokers"] == metadata("outbox-pubsub")["brokers"] == "127.0.0.1:2"
