"""Real tools for checking the deployment files: tilt, kustomize and Dapr's CRDs, as
scripts/ensure-tools.sh provides them."""

import os
import shlex
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from harness.resources import REPO_ROOT


@dataclass(frozen=True)
class DeployTools:
    tilt: Path
    kustomize: Path
    dapr_crds: Path


@cache
def deploy_tools() -> DeployTools:
    """From the environment when `make test` provided them, else from the script."""
    if all(name in os.environ for name in ("TILT", "KUSTOMIZE", "DAPR_CRDS")):
        return DeployTools(
            Path(os.environ["TILT"]), Path(os.environ["KUSTOMIZE"]), Path(os.environ["DAPR_CRDS"])
        )
    out = subprocess.run(
        [str(REPO_ROOT / "scripts" / "ensure-tools.sh")], check=True, capture_output=True, text=True
    ).stdout
    values = {}
    for line in out.splitlines():
        name, _, value = line.partition("=")
        values[name] = shlex.split(value)[0]
    return DeployTools(Path(values["TILT"]), Path(values["KUSTOMIZE"]), Path(values["DAPR_CRDS"]))


def versions() -> dict[str, str]:
    """versions.env as a dict."""
    pairs = {}
    for line in (REPO_ROOT / "versions.env").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name] = value
    return pairs


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    rendered = subprocess.run(
        [str(deploy_tools().kustomize), "build", str(directory)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ},
    ).stdout
    return [d for d in yaml.safe_load_all(rendered) if d]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """The objects of one kind, by name."""
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def app_configuration(objects: list[dict[str, Any]], app: str) -> dict[str, Any]:
    """The Dapr Configuration an app's sidecar runs with (annotation dapr.io/config)."""
    template = by_kind(objects, "Deployment")[app]["spec"]["template"]
    return by_kind(objects, "Configuration")[template["metadata"]["annotations"]["dapr.io/config"]]
