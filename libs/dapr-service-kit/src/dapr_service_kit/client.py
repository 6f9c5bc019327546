"""The one async Dapr client of a process, open for the app's lifetime, and the state and
secret adapters every app opens on it."""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TypeVar

from dapr.aio.clients import DaprClient
from dapr.aio.clients.health import DaprHealth as AsyncDaprHealth
from dapr.conf import settings as dapr_settings

from dapr_service_kit.secrets import DaprSecretStore
from dapr_service_kit.settings import SidecarAppSettings
from dapr_service_kit.sidecar_trace import TraceContextOnCalls
from dapr_service_kit.state_store import DaprStateStore, Stores


@contextlib.asynccontextmanager
async def open_dapr_client(call_timeout_seconds: float) -> AsyncIterator[DaprClient]:
    if getattr(dapr_settings, "DAPR_API_TIMEOUT_SECONDS", None) is None:
        # Without a deadline a call to a hung store would hang its request forever.
        setattr(dapr_settings, "DAPR_API_TIMEOUT_SECONDS", call_timeout_seconds)  # noqa: B010
    # The client's constructor blocks until the sidecar answers; wait without blocking
    # the event loop first, so that the constructor's own check passes at once.
    await AsyncDaprHealth.wait_for_sidecar()  # type: ignore[no-untyped-call]
    client = DaprClient(interceptors=[TraceContextOnCalls()])
    try:
        yield client
    finally:
        await client.close()  # type: ignore[no-untyped-call]


Store = TypeVar("Store", bound=DaprStateStore)


@dataclass(frozen=True)
class Sidecar(Stores[Store]):
    """The app's stores on the sidecar, and the client they use (for the app's own
    adapters beside them)."""

    client: DaprClient


@contextlib.asynccontextmanager
async def open_sidecar(
    settings: SidecarAppSettings, state_adapter: type[Store]
) -> AsyncIterator[Sidecar[Store]]:
    """The client, with the app's state store (`state_adapter`, told by the sidecar
    which kind of store it loaded) and secret store on it."""
    async with open_dapr_client(settings.dapr_call_timeout_seconds) as client:
        yield Sidecar(
            client=client,
            state=await state_adapter.connect(client, settings.state_store),
            secrets=DaprSecretStore(client, settings.secret_store),
        )
