from typing import Any

import pytest

from harness.deploy_tools import kustomize_build
from harness.resources import REPO_ROOT

POSTGRES_KAFKA_OVERLAY = REPO_ROOT / "k8s-overlays" / "postgres-kafka"


@pytest.fixture(scope="session")
def k8s_objects() -> list[dict[str, Any]]:
    """k8s/ as `kubectl apply -k k8s/` would apply it, rendered by a real kustomize."""
    return kustomize_build(REPO_ROOT / "k8s")


@pytest.fixture(scope="session")
def overlay_objects() -> list[dict[str, Any]]:
    """The postgres-kafka overlay of k8s/, as `kubectl apply -k` would apply it."""
    return kustomize_build(POSTGRES_KAFKA_OVERLAY)
