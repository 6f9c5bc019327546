from typing import Any

import pytest

from harness.deploy_tools import kustomize_build
from harness.resources import REPO_ROOT


@pytest.fixture(scope="session")
def k8s_objects() -> list[dict[str, Any]]:
    """k8s/ as `kubectl apply -k k8s/` would apply it, rendered by a real kustomize."""
    return kustomize_build(REPO_ROOT / "k8s")
