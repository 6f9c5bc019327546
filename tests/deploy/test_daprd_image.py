"""The project's daprd image (third_party/dapr/Dockerfile): the pinned Dapr release with
the patches beside it, built as scripts/ensure-dapr.sh builds daprd, in the layout of the
official daprio/daprd; named with a tag that moves with the patches; run by both compose
sidecars and asked for by both app pods in Kubernetes, with stock daprd one switch away.
(The Tiltfile's part: tests/deploy/test_tiltfile.py.)"""

import copy
import hashlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.compose_model import check_against_the_compose_spec, compose_model
from harness.deploy_tools import by_kind, versions
from harness.resources import REPO_ROOT

DAPR_DIR = REPO_ROOT / "third_party" / "dapr"
DOCKERFILE = DAPR_DIR / "Dockerfile"
PINS = versions()
DAPR = PINS["DAPR_RUNTIME_VERSION"]
IMAGE = f"task-platform/daprd:{PINS['DAPRD_IMAGE_TAG']}"
STOCK_IMAGE = f"daprio/daprd:{DAPR}"
STOCK_OVERRIDE = "docker-compose.stock-daprd.yml"
APPS = ["task-api", "notification-service"]
SIDECARS = [f"{app}-dapr" for app in APPS]
SIDECAR_IMAGE = "dapr.io/sidecar-image"
PROFILES = {"redis": (), "postgres-kafka": ("docker-compose.postgres-kafka.yml",)}


def joined(text: str) -> str:
    """Continuation lines joined, comments dropped."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return re.sub(r"\\\n\s*", " ", "\n".join(lines))


def stages(text: str) -> list[str]:
    found: list[str] = []
    for line in joined(text).splitlines():
        if line.startswith("FROM "):
            found.append("")
        if found:
            found[-1] += line.strip() + "\n"
    return found


def test_the_base_images_and_release_are_the_pins_of_versions_env() -> None:
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", DOCKERFILE.read_text(), re.M))
    assert args == {
        "GO_IMAGE": f"golang:{PINS['GO_IMAGE_VERSION']}-bookworm",
        "RUNTIME_IMAGE": PINS["DISTROLESS_IMAGE"],
        "DAPR_RUNTIME_VERSION": DAPR,
    }
    build, final = stages(DOCKERFILE.read_text())
    assert build.startswith("FROM ${GO_IMAGE} AS build\n")
    assert final.startswith("FROM ${RUNTIME_IMAGE}\n")


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run(
        [str(hadolint), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def go_build(text: str, variable: str) -> str:
    """The flags and package of a script's `go build` of daprd, its output left out and its
    version variable named VERSION."""
    match = re.search(r"go build (?:-C \S+ )?(.*?) -o \S+ (\./cmd/daprd)", joined(text))
    assert match is not None
    return f"{match.group(1)} {match.group(2)}".replace(variable, "VERSION")


def test_daprd_is_built_as_ensure_dapr_builds_it() -> None:
    """The same module, patches and `go build` as `make up` and the tests run, with Go's
    module and build caches kept between builds (a patch change recompiles little)."""
    ensure = (REPO_ROOT / "scripts" / "ensure-dapr.sh").read_text()
    build, _ = stages(DOCKERFILE.read_text())
    assert go_build(build, "${DAPR_RUNTIME_VERSION}") == go_build(ensure, "$runtime_version")
    assert "CGO_ENABLED=0" in build
    assert "COPY *.patch patches/" in build
    assert 'go mod download "github.com/dapr/dapr@v${DAPR_RUNTIME_VERSION}"' in build
    assert "rm -rf dapr/vendor dapr/go.work dapr/go.work.sum" in build
    assert 'git -C dapr apply -p1 "../$patch"' in build
    caches = dict(re.findall(r"--mount=type=cache,id=([\w-]+),target=(\S+)", build))
    environment = dict(re.findall(r"\b(GOMODCACHE|GOCACHE)=(\S+)", build))
    assert sorted(caches.values()) == sorted(environment.values())


def test_the_image_has_the_layout_of_daprio_daprd() -> None:
    """daprd at /daprd (compose runs ./daprd from /, the injector /daprd), as a numeric
    non-root user (Kubernetes can only check runAsNonRoot against a number)."""
    _, final = stages(DOCKERFILE.read_text())
    assert "COPY --from=build /src/daprd /daprd\n" in final
    assert re.findall(r"^WORKDIR (\S+)$", final, re.M) == ["/"]
    user = re.findall(r"^USER (\d+):(\d+)$", final, re.M)
    assert len(user) == 1
    assert 0 not in {int(n) for n in user[0]}
    assert "ENTRYPOINT" not in final
    assert "CMD" not in final


def patches_digest() -> str:
    patches = sorted(DAPR_DIR.glob("*.patch"))
    assert patches
    return hashlib.sha256(b"".join(p.read_bytes() for p in patches)).hexdigest()


def test_the_image_tag_moves_with_the_patches() -> None:
    digest = patches_digest()
    assert PINS["DAPRD_PATCHES_SHA256"] == digest, (
        "third_party/dapr/*.patch changed: raise the number at the end of DAPRD_IMAGE_TAG "
        f"in versions.env (and wherever the image is named), and record {digest} beside it"
    )
    assert re.fullmatch(rf"{re.escape(DAPR)}-[a-z][a-z-]*\.\d+", PINS["DAPRD_IMAGE_TAG"])


def test_every_file_naming_the_image_names_the_current_tag() -> None:
    files = [
        *REPO_ROOT.glob("docker-compose*.yml"),
        *(REPO_ROOT / "k8s").rglob("*.yaml"),
        *(REPO_ROOT / "k8s-overlays").rglob("*.yaml"),
        REPO_ROOT / "Tiltfile",
        *REPO_ROOT.glob("*.md"),
        *(REPO_ROOT / "docs").glob("*.md"),
        REPO_ROOT / "bench" / "README.md",
        *DAPR_DIR.glob("*.md"),
    ]
    named = {
        (path.relative_to(REPO_ROOT).as_posix(), tag)
        for path in files
        for tag in re.findall(r"task-platform/daprd:([\w.-]+)", path.read_text())
    }
    assert {tag for _, tag in named} == {PINS["DAPRD_IMAGE_TAG"]}, named
    assert {"docker-compose.yml", "k8s/task-api.yaml", "k8s/notification-service.yaml"} <= {
        path for path, _ in named
    }


# --- compose ----------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_both_sidecars_run_the_project_image_built_from_the_dockerfile(profile: str) -> None:
    services = compose_model(*PROFILES[profile])["services"]
    for name in SIDECARS:
        sidecar = services[name]
        assert sidecar["image"] == IMAGE, name
        build = sidecar["build"]
        assert REPO_ROOT / build["context"] / build.get("dockerfile", "Dockerfile") == DOCKERFILE
    assert not [s for s in services.values() if "daprio/daprd" in s.get("image", "")]


def without_sidecar_images(model: dict[str, Any]) -> dict[str, Any]:
    rest = copy.deepcopy(model)
    for name in SIDECARS:
        rest["services"][name].pop("image")
        rest["services"][name].pop("build", None)
    return rest


@pytest.mark.parametrize("profile", PROFILES)
def test_the_stock_override_changes_the_sidecar_image_and_nothing_else(
    profile: str, tmp_path: Path
) -> None:
    project = compose_model(*PROFILES[profile])
    stock = compose_model(*PROFILES[profile], STOCK_OVERRIDE)
    for name in SIDECARS:
        assert stock["services"][name]["image"] == STOCK_IMAGE
        assert "build" not in stock["services"][name]
    assert without_sidecar_images(stock) == without_sidecar_images(project)
    merged = tmp_path / "docker-compose.merged.yml"
    merged.write_text(yaml.safe_dump(stock))
    check_against_the_compose_spec(merged)
    # make e2e-compose's switch (DAPRD=stock) is this file.
    assert STOCK_OVERRIDE in (REPO_ROOT / "scripts" / "e2e-compose.sh").read_text()


# --- Kubernetes -------------------------------------------------------------------------


@pytest.mark.parametrize("render", ["k8s_objects", "overlay_objects"])
def test_both_app_pods_ask_the_injector_for_the_project_daprd(
    render: str, request: pytest.FixtureRequest
) -> None:
    """By the per-pod annotation a Dapr user knows; the control plane's default sidecar
    image stays stock daprd."""
    objects: list[dict[str, Any]] = request.getfixturevalue(render)
    asked = {}
    for name, deployment in by_kind(objects, "Deployment").items():
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("dapr.io/enabled") == "true" or SIDECAR_IMAGE in annotations:
            asked[name] = annotations.get(SIDECAR_IMAGE)
    assert asked == {app: IMAGE for app in APPS}
