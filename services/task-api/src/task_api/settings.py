"""task-api settings, from `TASK_API_*` environment variables.

Only names of Dapr resources and tuning live here: no addresses, no credentials. The
Dapr SDK finds its sidecar through the `DAPR_*` variables daprd's launcher sets.
"""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(populate_by_name=True, env_prefix="TASK_API_")

    state_store: str = "statestore"
    secret_store: str = "secretstore"  # noqa: S105 - a component name, not a secret
    api_key_secret: str = "task-api-key"  # noqa: S105 - the name of the secret
    # Signs list cursors; every replica must read the same one.
    cursor_key_secret: str = "task-api-cursor-key"  # noqa: S105 - the name of the secret
    notification_app_id: str = "notification-service"
    notify_method: str = "notify"
    # Covers the sidecar's own retries of `notify` (see the Resiliency resource).
    notify_timeout_seconds: int = 15
    max_body_bytes: int = 64 * 1024
    # Deadline of each call to the sidecar, unless DAPR_API_TIMEOUT_SECONDS sets one.
    dapr_call_timeout_seconds: float = 5.0
    # Seconds a client is told to wait when the sidecar or the store is down.
    retry_after_seconds: int = 2
    # Writes are slowed down (held, then 503) while notifications trail them by more than
    # this; 0 turns the back-pressure off. Dapr's outbox alone adds about 1 s (its
    # relay's fixed wait), so this must stay well above 1.
    event_lag_target_seconds: float = 1.3
    # How often notification-service is asked for the lag (one invocation per replica).
    event_lag_poll_seconds: float = 0.25
    lag_method: str = "pipeline/lag"
    # Prometheus metrics on a port of their own (off without one); the host is where
    # that port listens (0.0.0.0 in a pod, for the scraper).
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # The token daprd presents when it calls this app (Dapr's own variable name); the
    # routes only the sidecar may call refuse everyone when it is not set.
    app_api_token: str | None = Field(default=None, validation_alias="APP_API_TOKEN", repr=False)
