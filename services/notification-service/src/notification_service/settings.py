"""notification-service settings, from `NOTIFICATION_SERVICE_*` environment variables
(those of every app on a sidecar are dapr_service_kit's)."""

from pydantic_settings import SettingsConfigDict

from dapr_service_kit.settings import SidecarAppSettings


class Settings(SidecarAppSettings):
    model_config = SettingsConfigDict(populate_by_name=True, env_prefix="NOTIFICATION_SERVICE_")

    # How many notifications GET /notifications can page through.
    recent_capacity: int = 1000
    # How long a delivered event id is remembered, so a late redelivery is still a
    # duplicate after it has left the recent list.
    dedupe_ttl_seconds: int = 7 * 24 * 3600
