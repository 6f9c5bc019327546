"""Images in the local registry: the cluster's own (pause, CoreDNS, Dapr's control plane and
daprd), each one binary pushed as a FROM-scratch image, and the Docker Hub images the
manifests run, copied from the Docker engine."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .binaries import Tools, versions
from .commands import ClusterError, log, run
from .layout import REGISTRY_HOST, REGISTRY_LISTEN, REPO

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class Image:
    """A FROM-scratch image: one binary at /<name>, run as `user`."""

    repository: str  # without the registry host
    tag: str
    binary: Path
    entrypoint: str
    user: str = "65532:65532"

    @property
    def ref(self) -> str:
        return f"{REGISTRY_HOST}/{self.repository}:{self.tag}"


def layer_for(binary: Path, name: str) -> bytes:
    """An uncompressed, reproducible tar layer holding one executable."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("etc", "tmp"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        info = tarfile.TarInfo(name)
        data = binary.read_bytes()
        info.size = len(data)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def registry_request(
    method: str, path: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str]]:
    url = path if path.startswith("http") else f"http://{REGISTRY_LISTEN}{path}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - loopback
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def push_blob(repository: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    status, _ = registry_request("HEAD", f"/v2/{repository}/blobs/{digest}")
    if status == 200:
        return digest
    status, headers = registry_request("POST", f"/v2/{repository}/blobs/uploads/")
    if status != 202:
        raise ClusterError(f"registry refused an upload to {repository}: HTTP {status}")
    location = headers["Location"]
    if location.startswith("/"):
        location = f"http://{REGISTRY_LISTEN}{location}"
    separator = "&" if "?" in location else "?"
    status, _ = registry_request(
        "PUT",
        f"{location}{separator}digest={digest}",
        data,
        {"Content-Type": "application/octet-stream"},
    )
    if status != 201:
        raise ClusterError(f"registry refused a blob for {repository}: HTTP {status}")
    return digest


def push_image(image: Image) -> None:
    layer = layer_for(image.binary, image.entrypoint.lstrip("/"))
    layer_digest = push_blob(image.repository, layer)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": [image.entrypoint], "User": image.user, "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        },
        sort_keys=True,
    ).encode()
    config_digest = push_blob(image.repository, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        },
        sort_keys=True,
    ).encode()
    status, _ = registry_request(
        "PUT", f"/v2/{image.repository}/manifests/{image.tag}", manifest,
        {"Content-Type": OCI_MANIFEST},
    )  # fmt: skip
    if status != 201:
        raise ClusterError(f"registry refused the manifest of {image.ref}: HTTP {status}")


def cluster_images(tools: Tools) -> list[Image]:
    pins = versions()
    dapr = pins["DAPR_RUNTIME_VERSION"]
    images = [
        Image("task-platform/pause", "3.10", tools.pause, "/pause", user="65535:65535"),
        Image("task-platform/coredns", pins["COREDNS_VERSION"], tools.coredns, "/coredns", "0:0"),
        Image("dapr/daprd", dapr, tools.daprd, "/daprd"),
    ]
    for name in ("operator", "injector", "sentry", "placement"):
        images.append(Image(f"dapr/{name}", dapr, tools.dapr_cp_bin / name, f"/{name}"))
    return images


def manifest_images() -> dict[str, bool]:
    """Images the manifests run that Tilt does not build (Tilt builds task-platform/*):
    k8s/'s and those of each overlay in k8s-overlays/, with whether this run needs them:
    k8s/'s always, an overlay's when BACKEND names it (make e2e-k8s BACKEND=postgres-kafka)."""
    backend = os.environ.get("BACKEND") or "redis"
    found: dict[str, bool] = {}
    for directory in [REPO / "k8s", *sorted((REPO / "k8s-overlays").glob("*/"))]:
        needed = directory.name in ("k8s", backend)
        for path in sorted(directory.rglob("*.yaml")):
            for line in path.read_text().splitlines():
                match = re.match(r"\s*(?:-\s+)?image:\s*[\"']?([^\"'\s]+)", line)
                if match and not match.group(1).startswith("task-platform/"):
                    found[match.group(1)] = found.get(match.group(1), False) or needed
    return found


def mirror_name(image: str) -> str | None:
    """Where a Docker Hub image lives in the local registry (None: another registry)."""
    first, _, rest = image.partition("/")
    if not rest:
        return f"library/{image}"
    if "." in first or ":" in first or first == "localhost":
        return None if first != "docker.io" else mirror_name(rest)
    return image


def preload_images() -> None:
    """Copy the Docker Hub images the manifests need (redis, jaeger; postgres and kafka for
    BACKEND=postgres-kafka) from the Docker engine, when one answers (scripts/docker-up.sh
    exports DOCKER and DOCKER_HOST), into the local registry, where containerd finds them.
    Pushed every time (cheap: layers already there are skipped), so a rebuilt stand-in
    replaces the old one. Another profile's images are pushed when the engine has them."""
    docker = os.environ.get("DOCKER") or "/usr/bin/docker"
    accept = ", ".join(
        [
            OCI_MANIFEST,
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        ]
    )
    for image, needed in sorted(manifest_images().items()):
        name = mirror_name(image)
        if name is None:
            continue
        target = f"{REGISTRY_HOST}/{name}"
        engine_has_it = (
            Path(docker).is_file()
            and run([docker, "image", "inspect", image], check=False, quiet=True).returncode == 0
        )
        if engine_has_it:
            run([docker, "tag", image, target])
            pushed = run([docker, "push", target], check=False)
            if pushed.returncode == 0:
                log(f"copied {image} from the Docker engine into {target}")
                continue
            log(f"note: `docker push {target}` failed: {pushed.stderr.strip()[-300:]}")
        if not needed:
            continue
        repository, _, tag = name.rpartition(":")
        status, _ = registry_request(
            "HEAD", f"/v2/{repository}/manifests/{tag}", headers={"Accept": accept}
        )
        if status != 200:
            log(
                f"note: {image} is neither in the local registry nor in a Docker engine; "
                f"pods using it will not start until it is pushed to {target}"
            )
