"""What a writer that dies mid-write leaves behind, and the relay that must clean it up.

Dapr's outbox publishes a transaction's events to its internal topic before the
transaction commits; the relay (in task-api's sidecar) publishes one to task-events only
once it finds the commit's marker in the state store. A writer killed between the two
steps, or a transaction that fails, leaves an orphan: a message whose marker never comes.
With outboxDiscardWhenMissingState (components/*/statestore.yaml) the relay must drop it.
Stock daprd 1.18.1 retries it without pause, forever (third_party/dapr/README.md).
"""

import asyncio
import uuid

import httpx

from harness.processes import ManagedProcess
from harness.stack import Stack, log_lines

# Self-hosted daprd's namespace, the publishing app-id, the topic, "outbox".
INTERNAL_TOPIC = "defaulttask-apitask-eventsoutbox"
# The relay waits 1 s, then looks for the marker for 10 s: dropped within 15 s.
DROP_WITHIN = 15.0
# A sidecar with nothing to do uses a few milliseconds of CPU a second; stock daprd
# spinning on one orphan uses a whole core.
IDLE_CORES = 0.1


async def publish_orphans(stack: Stack, count: int) -> list[str]:
    """Publish `count` CloudEvents to the internal topic as the outbox does before a
    commit, with ids that name markers no transaction ever wrote; return the ids."""
    sidecar = stack.task_api
    ids = [f"outbox-{uuid.uuid4()}" for _ in range(count)]
    async with httpx.AsyncClient(
        base_url=sidecar.sidecar_url, headers={"dapr-api-token": stack.dapr_api_token}, timeout=10
    ) as client:
        for message_id in ids:
            orphan = {
                "specversion": "1.0",
                "id": message_id,
                "source": "task-api",
                "type": "com.dapr.event.sent",
                "datacontenttype": "application/json",
                "data": {"probe": "never committed"},
            }
            published = await client.post(
                f"/v1.0/publish/outbox-pubsub/{INTERNAL_TOPIC}",
                json=orphan,
                headers={"Content-Type": "application/cloudevents+json"},
            )
            assert published.status_code == 204, published.text
    return ids


def dropped(sidecar: ManagedProcess, ids: list[str]) -> bool:
    """Whether the relay logged the discard of every one of `ids`."""
    return all(log_lines(sidecar, f"discarding message {message_id}") for message_id in ids)


async def cores_used(process: ManagedProcess, over: float = 3.0) -> float:
    """The CPU `process` used in the next `over` seconds, in cores."""
    before = process.cpu_seconds()
    await asyncio.sleep(over)
    return (process.cpu_seconds() - before) / over
