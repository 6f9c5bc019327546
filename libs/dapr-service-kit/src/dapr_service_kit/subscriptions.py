"""What a subscription route answers Dapr for each message, and the router such routes
live on: under /events, called only by the sidecar (its app token), not documented."""

from fastapi import APIRouter

from dapr_service_kit.sidecar_auth import FromSidecar

SUCCESS = {"status": "SUCCESS"}
# Redeliver later.
RETRY = {"status": "RETRY"}
# To the dead-letter topic, if the subscription has one.
DROP = {"status": "DROP"}


def subscription_router() -> APIRouter:
    return APIRouter(
        prefix="/events",
        tags=["subscriptions"],
        include_in_schema=False,
        dependencies=[FromSidecar],
    )
