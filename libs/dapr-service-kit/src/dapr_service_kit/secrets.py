"""A secret read through the sidecar's secrets API, once, at start-up.

The services keep their own error types (their ports); the adapter raises the one it
is given, so a caller handles a secret-store outage like any other sidecar outage.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import grpc
from dapr.aio.clients import DaprClient
from dapr.clients.exceptions import DaprInternalError

logger = logging.getLogger(__name__)

SECRET_WAIT_SECONDS = 60.0


class DaprSecretStore:
    def __init__(
        self, client: DaprClient, store_name: str, *, unavailable: Callable[[str], Exception]
    ) -> None:
        self._client = client
        self._store = store_name
        self._unavailable = unavailable

    async def get_secret(self, name: str) -> str:
        try:
            response = await self._client.get_secret(self._store, name)
        except (grpc.RpcError, DaprInternalError) as error:
            raise self._unavailable(type(error).__name__) from error
        value: str = response.secret[name]
        return value


async def wait_for_secret(
    get_secret: Callable[[str], Awaitable[str]],
    name: str,
    *,
    unavailable: type[Exception],
    wait_seconds: float = SECRET_WAIT_SECONDS,
) -> bytes:
    """The secret, waiting out a sidecar whose secret store is still starting: the app
    may be up before daprd has loaded its components."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return (await get_secret(name)).encode()
        except unavailable:
            if time.monotonic() > deadline:
                raise
            logger.info("secret store not ready yet; retrying")
            await asyncio.sleep(1)
