"""The API key guard of every `/tasks` route."""

import hmac
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request


def _expected_key(request: Request) -> bytes:
    key: bytes = request.app.state.runtime.api_key
    return key


async def require_api_key(
    request: Request,
    x_api_key: Annotated[
        str | None, Header(description="The API key (secret `task-api-key`)")
    ] = None,
) -> None:
    # Constant-time comparison, so response timing does not reveal a key's prefix.
    if x_api_key is None or not hmac.compare_digest(x_api_key.encode(), _expected_key(request)):
        raise HTTPException(status_code=401, detail="missing or invalid X-API-Key")


ApiKey = Depends(require_api_key)
