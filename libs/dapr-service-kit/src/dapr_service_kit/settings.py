"""The settings every app on a Dapr sidecar has; each service's Settings adds its own
and its environment prefix (TASK_API_, NOTIFICATION_SERVICE_).

Only names of Dapr resources and tuning live here: no addresses, no credentials but
the sidecar's token. The Dapr SDK finds its sidecar through the `DAPR_*` variables
daprd's launcher sets.
"""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SidecarAppSettings(BaseSettings):
    model_config = SettingsConfigDict(populate_by_name=True)

    state_store: str = "statestore"
    secret_store: str = "secretstore"  # noqa: S105 - a component name, not a secret
    # The key of task-api's REST API (notification-service's feed takes it too).
    api_key_secret: str = "task-api-key"  # noqa: S105 - the name of the secret
    # Deadline of each call to the sidecar, unless DAPR_API_TIMEOUT_SECONDS sets one.
    dapr_call_timeout_seconds: float = 5.0
    # Seconds a client is told to wait when the sidecar or the store is down.
    retry_after_seconds: int = 2
    # Prometheus metrics on a port of their own (off without one); the host is where
    # that port listens (0.0.0.0 in a pod, for the scraper).
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # The token daprd presents when it calls this app (Dapr's own variable name); the
    # routes only the sidecar may call refuse everyone when it is not set.
    app_api_token: str | None = Field(default=None, validation_alias="APP_API_TOKEN", repr=False)
