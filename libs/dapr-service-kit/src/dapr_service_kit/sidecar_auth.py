"""Routes only the Dapr sidecar may call (subscriptions, invoked methods) check the app
API token that daprd sends in the `dapr-api-token` header (it reads it from
APP_API_TOKEN). The expected token is the app's `settings.app_api_token`."""

import hmac
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request


async def require_sidecar(
    request: Request,
    dapr_api_token: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    expected: str | None = request.app.state.settings.app_api_token
    # Locked by default: without a configured token nobody is the sidecar.
    if (
        expected is None
        or dapr_api_token is None
        or not hmac.compare_digest(dapr_api_token.encode(), expected.encode())
    ):
        raise HTTPException(status_code=401, detail="only the Dapr sidecar may call this route")


FromSidecar = Depends(require_sidecar)
