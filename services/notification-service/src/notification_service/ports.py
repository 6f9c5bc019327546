"""The ports notification-service needs: exactly the shared state and secret ports of
dapr_service_kit (its `dapr_adapters` open the kit's adapters on the sidecar, unit tests
the kit's fakes in memory)."""

from dapr_service_kit.errors import EtagMismatch, InfrastructureUnavailable
from dapr_service_kit.state_store import SecretStore, StateStore, Versioned

__all__ = [
    "EtagMismatch",
    "InfrastructureUnavailable",
    "SecretStore",
    "StateStore",
    "Versioned",
]
