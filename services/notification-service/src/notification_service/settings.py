"""notification-service settings, from `NOTIFICATION_SERVICE_*` environment variables
(those of every app on a sidecar are dapr_service_kit's)."""

from pydantic_settings import SettingsConfigDict

from dapr_service_kit.settings import SidecarAppSettings


class Settings(SidecarAppSettings):
    model_config = SettingsConfigDict(populate_by_name=True, env_prefix="NOTIFICATION_SERVICE_")

    # How many notifications GET /notifications can page through.
    recent_capacity: int = 1000
    # How long a notification's claim (its record, with the event id) is kept: a
    # redelivery within it is a duplicate, and GET /notifications shows only
    # notifications whose record is still there. Every redelivery comes well within 10
    # minutes: a dead consumer's messages after processingTimeout (30 s), the delivery
    # retries within about a minute, a retried `notify` within seconds of the answer it
    # lost. It is also what each write costs Redis for that long, about 0.5 KB (see
    # docs/design.md, "Redis' memory is bounded"): at the ~260 writes/s two cores sustain, 10
    # minutes of claims take 80 to 90 MB, which with both streams at their cap (about
    # 96 MB) stays inside the 256 MiB the Kubernetes Redis gets. It was 7 days: with the
    # streams untrimmed, about 8 minutes of such writes filled that Redis.
    dedupe_ttl_seconds: int = 10 * 60
