"""The harness's Dapr resources: shortened timings must not break what the component's
own settings guarantee."""

from pathlib import Path

import yaml

from harness.resources import write_resources

# Dapr's outbox relay waits up to about this long for a transaction's commit marker
# before it gives a message up (see components/resources/pubsub.yaml).
OUTBOX_RELAY_WAIT_SECONDS = 11


def test_processing_timeout_outlasts_the_outbox_relay(tmp_path: Path) -> None:
    resources, _, _ = write_resources(tmp_path, redis_port=6379, other_secrets={})
    [pubsub] = [
        d
        for d in yaml.safe_load_all((resources / "pubsub.yaml").read_text())
        if d and d["spec"]["type"].startswith("pubsub.")
    ]
    metadata = {m["name"]: m["value"] for m in pubsub["spec"]["metadata"]}
    assert int(metadata["processingTimeout"].removesuffix("s")) > OUTBOX_RELAY_WAIT_SECONDS
