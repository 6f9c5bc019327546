"""The ports on the Dapr sidecar, through the process's one async Dapr client (the
shared adapters of dapr_service_kit). The only module of notification-service that
knows Dapr's client."""

import contextlib
from collections.abc import AsyncIterator

from dapr_service_kit.client import open_sidecar
from dapr_service_kit.state_store import DaprStateStore
from notification_service.runtime import Ports
from notification_service.settings import Settings


@contextlib.asynccontextmanager
async def connect_dapr(settings: Settings) -> AsyncIterator[Ports]:
    async with open_sidecar(settings, DaprStateStore) as sidecar:
        yield Ports(state=sidecar.state, secrets=sidecar.secrets)
