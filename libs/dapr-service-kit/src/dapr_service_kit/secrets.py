"""A secret read through the sidecar's secrets API, once, at start-up. A secret-store
outage is an outage like any other (InfrastructureUnavailable)."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from dapr.aio.clients import DaprClient

from dapr_service_kit.errors import InfrastructureUnavailable, sidecar_call

logger = logging.getLogger(__name__)

SECRET_WAIT_SECONDS = 60.0


class DaprSecretStore:
    def __init__(self, client: DaprClient, store_name: str) -> None:
        self._client = client
        self._store = store_name

    async def get_secret(self, name: str) -> str:
        response = await sidecar_call(self._client.get_secret(self._store, name))
        value: str = response.secret[name]
        return value


async def wait_for_secret(
    get_secret: Callable[[str], Awaitable[str]],
    name: str,
    *,
    wait_seconds: float = SECRET_WAIT_SECONDS,
) -> bytes:
    """The secret, waiting out a sidecar whose secret store is still starting: the app
    may be up before daprd has loaded its components."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return (await get_secret(name)).encode()
        except InfrastructureUnavailable:
            if time.monotonic() > deadline:
                raise
            logger.info("secret store not ready yet; retrying")
            await asyncio.sleep(1)
