"""task-api settings, from `TASK_API_*` environment variables (those of every app on
a sidecar are dapr_service_kit's)."""

from pydantic_settings import SettingsConfigDict

from dapr_service_kit.settings import SidecarAppSettings


class Settings(SidecarAppSettings):
    model_config = SettingsConfigDict(populate_by_name=True, env_prefix="TASK_API_")

    # Signs list cursors; every replica must read the same one.
    cursor_key_secret: str = "task-api-cursor-key"  # noqa: S105 - the name of the secret
    notification_app_id: str = "notification-service"
    notify_method: str = "notify"
    # Covers the sidecar's own retries of `notify` (see the Resiliency resource).
    notify_timeout_seconds: int = 15
    max_body_bytes: int = 64 * 1024
    # A request body must have arrived this long after its headers (else 408): a client
    # that stalls holds a connection, never a write slot, and not for long.
    body_read_timeout_seconds: float = 10.0
    # Writes are slowed down (held, then 503) while notifications trail them by more than
    # this; 0 turns the back-pressure off. Dapr's outbox alone adds about 1 s (its
    # relay's fixed wait), so this must stay well above 1.
    event_lag_target_seconds: float = 1.3
    # How often notification-service is asked for the lag (one invocation per replica).
    event_lag_poll_seconds: float = 0.25
    lag_method: str = "pipeline/lag"
