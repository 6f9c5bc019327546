"""The one async Dapr client of a process, open for the app's lifetime."""

import contextlib
from collections.abc import AsyncIterator

from dapr.aio.clients import DaprClient
from dapr.aio.clients.health import DaprHealth as AsyncDaprHealth
from dapr.conf import settings as dapr_settings


@contextlib.asynccontextmanager
async def open_dapr_client(call_timeout_seconds: float) -> AsyncIterator[DaprClient]:
    if getattr(dapr_settings, "DAPR_API_TIMEOUT_SECONDS", None) is None:
        # Without a deadline a call to a hung store would hang its request forever.
        setattr(dapr_settings, "DAPR_API_TIMEOUT_SECONDS", call_timeout_seconds)  # noqa: B010
    # The client's constructor blocks until the sidecar answers; wait without blocking
    # the event loop first, so that the constructor's own check passes at once.
    await AsyncDaprHealth.wait_for_sidecar()  # type: ignore[no-untyped-call]
    client = DaprClient()
    try:
        yield client
    finally:
        await client.close()  # type: ignore[no-untyped-call]
