"""The canary of the fix the project carries (third_party/dapr): the orphan check of
test_outbox_relay.py on daprd as Dapr ships it. It fails today, as an expected failure;
the day a Dapr release fixes the relay it passes, the strict mark fails the suite, and
the pin can move to that release and the patch go."""

import pytest

from harness.load import progress
from harness.outbox import DROP_WITHIN, IDLE_CORES, cores_used, publish_orphans
from harness.polling import eventually
from harness.stack import Stack, log_lines

pytestmark = [
    pytest.mark.stack_variant(daprd="stock"),
    pytest.mark.xfail(
        strict=True,
        reason="Dapr 1.18.1 defect (pkg/runtime/pubsub/outbox.go): the relay's backoff has "
        "no Stop value, so it retries an orphaned outbox message without pause, forever, "
        "and never drops it. Fixed by third_party/dapr/outbox-relay.patch.",
    ),
]


async def test_stock_daprd_drops_an_orphan(own_stack: Stack) -> None:
    sidecar = own_stack.task_api.sidecar
    assert sidecar is not None
    await publish_orphans(own_stack, 1)
    # Whatever words a fixed release logs the discard with, and whether or not it names
    # the message: it drops it and stops spinning.
    await eventually(
        progress(lambda: bool(log_lines(sidecar, "discarding message"))),
        within=DROP_WITHIN,
        what="stock daprd's relay to drop the orphaned message",
    )
    assert await cores_used(sidecar) < IDLE_CORES
