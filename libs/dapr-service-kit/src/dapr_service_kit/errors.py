"""What a call through the sidecar can end in that callers handle, whichever API it
uses (state, secrets, service invocation): an outage, or a conditional write that lost
its race. `sidecar_call` turns the SDK's failures into the outage."""

from collections.abc import Awaitable
from typing import TypeVar

import aiohttp  # noqa: TID251 - only to name the errors of the SDK's invocation client
import grpc
from dapr.clients.exceptions import DaprInternalError

from dapr_service_kit.state_errors import describe

T = TypeVar("T")


class InfrastructureUnavailable(Exception):
    """The sidecar or the store behind it did not answer: the caller may retry later."""


class EtagMismatch(Exception):
    """A conditional write lost: the stored version is not the one the write expected."""


async def sidecar_call(operation: Awaitable[T]) -> T:
    """Await a call to the sidecar; any failure is an outage. (The SDK's service
    invocation goes over HTTP: its failures are aiohttp's and timeouts.)"""
    try:
        return await operation
    except (grpc.RpcError, DaprInternalError, aiohttp.ClientError, TimeoutError) as error:
        raise InfrastructureUnavailable(describe(error)) from error
