"""The outbox relay and transactions that never committed (harness.outbox), on the
project's daprd: an orphan is dropped in seconds, the sidecar goes back to idle, and the
relay goes on relaying every acknowledged write, on every backend profile.
test_outbox_relay_stock.py runs the first check on stock daprd, where it fails today."""

import time

from harness.load import audit_acknowledged_creates, create_until, progress
from harness.outbox import DROP_WITHIN, IDLE_CORES, cores_used, dropped, publish_orphans
from harness.polling import eventually
from harness.stack import Stack


async def test_an_orphan_is_dropped_and_its_sidecar_goes_back_to_idle(own_stack: Stack) -> None:
    sidecar = own_stack.task_api.sidecar
    assert sidecar is not None
    published = time.monotonic()
    orphans = await publish_orphans(own_stack, 1)
    await eventually(
        progress(lambda: dropped(sidecar, orphans)),
        within=DROP_WITHIN,
        what="the relay to drop the orphaned message",
    )
    print(f"orphan dropped {time.monotonic() - published:.1f} s after it was published")
    busy = await cores_used(sidecar)
    print(f"task-api's sidecar afterwards: {busy:.3f} cores")
    assert busy < IDLE_CORES


async def test_creates_after_orphans_are_all_notified(own_stack: Stack) -> None:
    """Orphans spread over the internal topic (on Kafka, over several of its partitions),
    then 400 creates: each one is notified once."""
    sidecar = own_stack.task_api.sidecar
    assert sidecar is not None
    orphans = await publish_orphans(own_stack, 8)
    outcomes = await create_until(own_stack, 400)
    await audit_acknowledged_creates(own_stack, outcomes.acknowledged)
    await eventually(
        progress(lambda: dropped(sidecar, orphans)),
        within=DROP_WITHIN,
        what="the relay to drop every orphan",
    )
