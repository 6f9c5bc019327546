"""The binaries the cluster runs: built or located by scripts/ensure-cluster-tools.sh and
scripts/ensure-dapr.sh, and remembered in the run directory so that `down` needs neither."""

from __future__ import annotations

import dataclasses
import json
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .commands import ClusterError
from .layout import REPO, RUN, write_json


@dataclass(frozen=True)
class Tools:
    k8s_bin: Path
    pause: Path
    coredns: Path
    helm: Path
    registry: Path
    dapr_cp_bin: Path
    dapr_chart: Path
    daprd: Path
    etcd: Path
    containerd: Path
    ctr: Path
    cni_bin: Path

    def k8s(self, name: str) -> Path:
        return self.k8s_bin / name

    def save(self) -> None:
        write_json(RUN / "tools.json", {k: str(v) for k, v in dataclasses.asdict(self).items()})

    @classmethod
    def saved(cls) -> Tools | None:
        """The tools the running cluster was started with (`down` never builds anything)."""
        try:
            values = json.loads((RUN / "tools.json").read_text())
            return cls(**{k: Path(v) for k, v in values.items()})
        except (OSError, ValueError, TypeError):
            return None


def ensure_tools() -> Tools:
    """Build or locate everything (scripts/ensure-cluster-tools.sh, scripts/ensure-dapr.sh)."""
    out = subprocess.run(
        [str(REPO / "scripts/ensure-cluster-tools.sh")],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise ClusterError("scripts/ensure-cluster-tools.sh failed (see above)")
    values: dict[str, str] = {}
    for line in out.stdout.splitlines():
        key, _, value = line.partition("=")
        parts = shlex.split(value)
        values[key] = parts[0] if parts else ""
    # Stock daprd: the control plane's default sidecar image (daprio/daprd). The project's
    # own daprd reaches the cluster as an image Tilt builds (third_party/dapr/Dockerfile).
    dapr = subprocess.run(
        [str(REPO / "scripts/ensure-dapr.sh"), "stock"],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if dapr.returncode != 0:
        raise ClusterError("scripts/ensure-dapr.sh failed (see above)")
    for key in ("ETCD", "CONTAINERD", "CTR"):
        if not values.get(key):
            raise ClusterError(f"{key.lower()} is missing (Debian package); see above")
    return Tools(
        k8s_bin=Path(values["K8S_BIN"]),
        pause=Path(values["PAUSE"]),
        coredns=Path(values["COREDNS"]),
        helm=Path(values["HELM"]),
        registry=Path(values["REGISTRY"]),
        dapr_cp_bin=Path(values["DAPR_CP_BIN"]),
        dapr_chart=Path(values["DAPR_CHART"]),
        daprd=Path(dapr.stdout.strip()) / ".dapr/bin/daprd",
        etcd=Path(values["ETCD"]),
        containerd=Path(values["CONTAINERD"]),
        ctr=Path(values["CTR"]),
        cni_bin=Path(values["CNI_BIN"]),
    )


def versions() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / "versions.env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            pins[key.strip()] = value.strip()
    return pins
