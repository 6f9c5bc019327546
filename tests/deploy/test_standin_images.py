"""The local stand-ins of scripts/standin-images.sh (used when a registry cannot be reached)
cover every base image the project builds on, are labelled as stand-ins, and keep their
machine-specific settings out of the project's own Dockerfiles."""

import os
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
# The project's own Dockerfiles: the services' and its daprd image's.
PROJECT_DOCKERFILES = [*SERVICE_DOCKERFILES, REPO_ROOT / "third_party" / "dapr" / "Dockerfile"]


def standin_lines() -> list[tuple[str, str, str | None]]:
    """scripts/standin/images.txt: (image with versions.env expanded, recipe, when alone it
    is needed (a backend profile, or daprd=stock) or None)."""
    pins = versions()
    lines = []
    for line in (STANDIN / "images.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            image, recipe, *profile = line.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: pins[m.group(1)], image)
            lines.append((image, recipe, profile[0] if profile else None))
    return lines


def standin_list() -> dict[str, str]:
    """image -> recipe."""
    return {image: recipe for image, recipe, _ in standin_lines()}


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


def compose_images(name: str = "docker-compose.yml") -> set[str]:
    """Images a compose file runs without building them (the base file, or an override
    over it: its tags are YAML to compose, not to this reader; `build: !reset` drops a
    build)."""
    text = (REPO_ROOT / name).read_text().replace("!reset", "").replace("!override", "")
    compose: dict[str, Any] = yaml.safe_load(text)
    return {
        s["image"]
        for s in compose["services"].values()
        if s and "image" in s and not s.get("build")
    }


def kubernetes_images(directory: str = "k8s") -> set[str]:
    """Images k8s/ (or an overlay) runs that Tilt does not build: tools/cluster copies
    them from the Docker engine into the local cluster's registry, so a stand-in serves
    there too."""
    found = set()
    for path in sorted((REPO_ROOT / directory).rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            # (Patches of the overlay, a deletion among them, may carry no pod template.)
            if document and document.get("kind") in ("Deployment", "StatefulSet"):
                pod = document.get("spec", {}).get("template", {}).get("spec", {})
                for container in pod.get("containers", []):
                    if "image" in container and not container["image"].startswith("task-platform/"):
                        found.add(container["image"])
    return found


PROFILE_IMAGES = {
    "postgres-kafka": compose_images("docker-compose.postgres-kafka.yml")
    | kubernetes_images("k8s-overlays/postgres-kafka"),
    "daprd=stock": compose_images("docker-compose.stock-daprd.yml"),
}


def test_every_base_image_has_a_standin() -> None:
    assert SERVICE_DOCKERFILES
    needed = set().union(*(base_images(d) for d in PROJECT_DOCKERFILES)) | compose_images()
    needed |= compose_images("docker-compose.postgres-kafka.yml")
    needed |= compose_images("docker-compose.stock-daprd.yml")
    assert {"golang", "gcr.io/distroless/static-debian12"} <= {i.split(":")[0] for i in needed}
    assert needed - set(standin_list()) == set()


def test_every_image_kubernetes_pulls_has_a_standin() -> None:
    pulled = kubernetes_images() | kubernetes_images("k8s-overlays")
    repositories = {image.split(":")[0] for image in pulled}
    assert repositories >= {"redis", "jaegertracing/jaeger", "postgres", "apache/kafka"}
    assert pulled - set(standin_list()) == set()


def test_a_profiles_images_are_listed_for_that_profile_alone() -> None:
    """scripts/standin-images.sh makes them only for BACKEND=<profile>: a Redis run needs
    no Kafka (nor Java and Maven to make its stand-in); and stock daprd's only for
    DAPRD=stock (the project's daprd image is built from its Dockerfile)."""
    listed: dict[str, set[str]] = {}
    for image, _, profile in standin_lines():
        listed.setdefault(profile or "every", set()).add(image)
    assert PROFILE_IMAGES["postgres-kafka"] == {
        f"postgres:{versions()['POSTGRES_IMAGE_VERSION']}-bookworm",
        f"apache/kafka:{versions()['KAFKA_VERSION']}",
    }
    assert PROFILE_IMAGES["daprd=stock"] == {f"daprio/daprd:{versions()['DAPR_RUNTIME_VERSION']}"}
    assert listed.pop("every").isdisjoint(set().union(*PROFILE_IMAGES.values()))
    assert listed == PROFILE_IMAGES


def test_the_standin_entrypoints_are_executable() -> None:
    """They are COPYed as they are: a script without its x bit is no entrypoint."""
    scripts = sorted(STANDIN.glob("*.sh"))
    assert {p.name for p in scripts} >= {"redis-entry.sh", "postgres-entry.sh", "kafka-run.sh"}
    for script in scripts:
        assert os.access(script, os.X_OK), script


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


@pytest.mark.parametrize("dockerfile", PROJECT_DOCKERFILES, ids=lambda p: p.parent.name)
def test_standin_settings_stay_out_of_the_project_dockerfiles(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    for setting in ("UV_NATIVE_TLS", "SSL_CERT_FILE", "ca-certificates.crt", "GOPROXY", "GOFLAGS"):
        assert setting not in text
