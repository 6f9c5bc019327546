"""Dapr's outbox relay and a transaction that never committed. The outbox publishes a
transaction's events to its internal topic before the transaction commits; the relay
publishes one to task-events only once it finds the commit's marker in the state store.
With outboxDiscardWhenMissingState (components/*/statestore.yaml) it must drop one whose
marker never comes: a sidecar killed between the two steps leaves exactly that."""

import httpx
import pytest

from harness.backends import DAPR_OUTBOX_DEFECT
from harness.polling import eventually
from harness.stack import Stack, log_lines

# Self-hosted daprd's namespace, the publishing app-id, the topic, "outbox".
INTERNAL_TOPIC = "defaulttask-apitask-eventsoutbox"

pytestmark = pytest.mark.xfail(strict=True, reason=DAPR_OUTBOX_DEFECT)


async def test_an_event_whose_transaction_never_committed_is_dropped(own_stack: Stack) -> None:
    task_api = own_stack.task_api
    assert task_api.sidecar is not None
    # What the outbox publishes before a commit that never happens: a CloudEvent whose
    # id names a marker that is not in the state store.
    orphan = {
        "specversion": "1.0",
        "id": "outbox-00000000-0000-4000-8000-000000000000",
        "source": "task-api",
        "type": "com.dapr.event.sent",
        "datacontenttype": "application/json",
        "data": {"probe": "never committed"},
    }
    async with httpx.AsyncClient(
        base_url=task_api.sidecar_url,
        headers={"dapr-api-token": own_stack.dapr_api_token},
        timeout=10,
    ) as sidecar:
        published = await sidecar.post(
            f"/v1.0/publish/outbox-pubsub/{INTERNAL_TOPIC}",
            json=orphan,
            headers={"Content-Type": "application/cloudevents+json"},
        )
        assert published.status_code == 204, published.text

    async def dropped() -> bool:
        assert task_api.sidecar is not None
        return bool(log_lines(task_api.sidecar, "discarding message"))

    # Dapr's relay waits 1 s, then looks for the marker for 10 s, then drops it.
    await eventually(dropped, within=25, what="the relay to drop the orphaned event")
