"""notification-service settings, from `NOTIFICATION_SERVICE_*` environment variables."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(populate_by_name=True, env_prefix="NOTIFICATION_SERVICE_")

    state_store: str = "statestore"
    secret_store: str = "secretstore"  # noqa: S105 - a component name, not a secret
    # The feed shows what task-api protects, so it takes task-api's key.
    api_key_secret: str = "task-api-key"  # noqa: S105 - the name of the secret
    # How many notifications GET /notifications can page through.
    recent_capacity: int = 1000
    # How long a delivered event id is remembered, so a late redelivery is still a
    # duplicate after it has left the recent list.
    dedupe_ttl_seconds: int = 7 * 24 * 3600
    # Deadline of each call to the sidecar, unless DAPR_API_TIMEOUT_SECONDS sets one.
    dapr_call_timeout_seconds: float = 5.0
    retry_after_seconds: int = 2
    # Prometheus metrics on a port of their own (off without one); the host is where
    # that port listens (0.0.0.0 in a pod, for the scraper).
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # The token daprd presents when it calls this app (Dapr's own variable name); the
    # routes only the sidecar may call refuse everyone when it is not set.
    app_api_token: str | None = Field(default=None, validation_alias="APP_API_TOKEN", repr=False)
