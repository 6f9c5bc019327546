"""The state access notification-service needs: exactly the shared state port of
dapr_service_kit (its `dapr_adapters` implement it on the sidecar, unit tests on
memory)."""

from dapr_service_kit.state_store import (
    EtagMismatch,
    InfrastructureUnavailable,
    SecretStore,
    StateStore,
    Stores,
    Versioned,
)

__all__ = [
    "EtagMismatch",
    "InfrastructureUnavailable",
    "SecretStore",
    "StateStore",
    "Stores",
    "Versioned",
]
