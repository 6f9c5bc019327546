"""The local stand-ins of scripts/standin-images.sh (used when a registry cannot be reached)
cover every base image the project builds on, are labelled as stand-ins, and keep their
machine-specific settings out of the project's own Dockerfiles."""

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.deploy_tools import versions
from harness.resources import REPO_ROOT

STANDIN = REPO_ROOT / "scripts" / "standin"
SERVICE_DOCKERFILES = sorted((REPO_ROOT / "services").glob("*/Dockerfile"))


def standin_list() -> dict[str, str]:
    """scripts/standin/images.txt: image (with versions.env expanded) -> recipe."""
    pins = versions()
    listed = {}
    for line in (STANDIN / "images.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            image, recipe = line.split()
            listed[re.sub(r"\$\{(\w+)\}", lambda m: pins[m.group(1)], image)] = recipe
    return listed


def base_images(dockerfile: Path) -> set[str]:
    """The images a Dockerfile pulls: its syntax frontend and every FROM that is not a
    stage of its own, with ARG defaults substituted."""
    text = dockerfile.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    found = set(re.findall(r"^# syntax=(\S+)$", text, re.M))
    stages = set()
    for image, stage in re.findall(r"^FROM (\S+)(?: AS (\S+))?", text, re.M | re.I):
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args[m.group(1)], image)
        if image not in stages and image != "scratch":
            found.add(image)
        if stage:
            stages.add(stage)
    return found


def compose_images() -> set[str]:
    """Images docker-compose.yml runs without building them."""
    compose: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    return {s["image"] for s in compose["services"].values() if "build" not in s}


def kubernetes_images() -> set[str]:
    """Images k8s/ runs that Tilt does not build: tools/cluster.py copies them from the
    Docker engine into the local cluster's registry, so a stand-in serves there too."""
    found = set()
    for path in sorted((REPO_ROOT / "k8s").rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == "Deployment":
                for container in document["spec"]["template"]["spec"]["containers"]:
                    if not container["image"].startswith("task-platform/"):
                        found.add(container["image"])
    return found


def test_every_base_image_has_a_standin() -> None:
    assert SERVICE_DOCKERFILES
    needed = set().union(*(base_images(d) for d in SERVICE_DOCKERFILES)) | compose_images()
    assert needed - set(standin_list()) == set()


def test_every_image_kubernetes_pulls_has_a_standin() -> None:
    repositories = {image.split(":")[0] for image in kubernetes_images()}
    assert repositories >= {"redis", "jaegertracing/jaeger"}
    assert kubernetes_images() - set(standin_list()) == set()


@pytest.mark.parametrize("recipe", sorted(set(standin_list().values())))
def test_each_standin_is_labelled_as_one(recipe: str) -> None:
    text = (STANDIN / f"{recipe}.Dockerfile").read_text()
    assert "ARG STANDIN_FOR" in text
    assert 'org.task-platform.standin="true"' in text
    assert re.search(
        r'org\.opencontainers\.image\.description="local stand-in for \$\{STANDIN_FOR\}', text
    )


@pytest.mark.parametrize("recipe", sorted(set(standin_list().values())))
def test_each_standin_recipe_is_hadolint_clean(recipe: str) -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run(
        [str(hadolint), "--failure-threshold", "info", str(STANDIN / f"{recipe}.Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", SERVICE_DOCKERFILES, ids=lambda p: p.parent.name)
def test_standin_settings_stay_out_of_the_project_dockerfiles(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    for setting in ("UV_NATIVE_TLS", "SSL_CERT_FILE", "ca-certificates.crt"):
        assert setting not in text
