"""The API key guard of every `/tasks` route.

A plain ASGI middleware rather than a FastAPI dependency: the dependency (a header
parameter plus the request) cost about 25 µs per request, a quarter of what FastAPI
spends on a GET. The OpenAPI schema still documents the key, as a security scheme.
"""

import hmac
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from task_api.asgi_refusal import refuse

HEADER = b"x-api-key"
SCHEME = "ApiKey"
# Deny by default: only these route paths answer without the key. Probes and the API's
# own description are public; the subscription routes under /events are the sidecar's,
# checked against its app token instead (task_api.sidecar_auth), and daprd asks the app
# for its configuration under /dapr at start-up.
PUBLIC_PATHS = frozenset({"/health", "/ready", "/openapi.json", "/docs", "/docs/oauth2-redirect"})
SIDECAR_PREFIXES = ("/events/", "/dapr/")


def _route_path(scope: Scope) -> str:
    """The path the router matches: behind a prefix (uvicorn --root-path, a mount) the
    request's path carries the prefix, the route's does not."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root + "/") else path


def _protected(path: str) -> bool:
    return path not in PUBLIC_PATHS and not path.startswith(SIDECAR_PREFIXES)


class ApiKeyGuard:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _protected(_route_path(scope)):
            given = next((value for name, value in scope["headers"] if name == HEADER), None)
            expected: bytes = scope["app"].state.runtime.api_key
            # Constant-time comparison, so response timing does not reveal a key's prefix.
            if given is None or not hmac.compare_digest(given, expected):
                await refuse(send, 401, "missing or invalid X-API-Key")
                return
        await self._app(scope, receive, send)


def document_api_key(app: FastAPI) -> None:
    """Adds the key to the OpenAPI schema: a security scheme every operation but the
    public ones requires, with its 401."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {}).setdefault("securitySchemes", {})[SCHEME] = {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "The API key (secret `task-api-key`)",
        }
        for path, operations in schema["paths"].items():
            if _protected(path):
                for operation in operations.values():
                    operation["security"] = [{SCHEME: []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
