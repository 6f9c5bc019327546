"""tools/cluster (`make cluster-up/down`): the parts that need no root and no cluster."""

import importlib
import io
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

from harness.tools import tool_module


@pytest.fixture(scope="module")
def cluster() -> ModuleType:
    """The package, with the modules these tests read loaded (cluster.addons, ...)."""
    package = tool_module("cluster", "cluster_tool")
    for module in ("addons", "images", "layout", "network"):
        importlib.import_module(f"{package.__name__}.{module}")
    return package


def test_the_registry_is_announced_to_tilt(cluster: ModuleType) -> None:
    """KEP-1755: Tilt finds the local registry through this ConfigMap and pushes there."""
    items = cluster.addons.bootstrap_objects("localhost:5000/x:1")["items"]
    (announcement,) = [i for i in items if i["metadata"]["name"] == "local-registry-hosting"]
    assert announcement["metadata"]["namespace"] == "kube-public"
    assert 'host: "localhost:5000"' in announcement["data"]["localRegistryHosting.v1"]


def test_coredns_answers_for_the_cluster_only(cluster: ModuleType) -> None:
    """No DNS query leaves the machine: CoreDNS forwards nothing upstream."""
    items = cluster.addons.bootstrap_objects("localhost:5000/x:1")["items"]
    (config,) = [
        i for i in items if i["kind"] == "ConfigMap" and i["metadata"]["name"] == "coredns"
    ]
    assert "forward" not in config["data"]["Corefile"]
    (service,) = [i for i in items if i["kind"] == "Service"]
    assert service["spec"]["clusterIP"] == cluster.layout.DNS_SERVICE_IP


def test_down_removes_only_cluster_rules(cluster: ModuleType) -> None:
    ours = [
        ":KUBE-SERVICES - [0:0]",
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        "-A CNI-HOSTPORT-DNAT -j RETURN",
        f"-A FORWARD -i tpcni0 -m comment --comment {cluster.layout.RULE_COMMENT} -j ACCEPT",
    ]
    theirs = [
        ":DOCKER - [0:0]",
        "-A FORWARD -j DOCKER-USER",
        "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
    ]
    assert all(cluster.network.is_cluster_rule(line) for line in ours)
    assert not any(cluster.network.is_cluster_rule(line) for line in theirs)


def test_image_layers_are_reproducible(cluster: ModuleType, tmp_path: Path) -> None:
    """The same binary gives the same digest, so a warm `up` uploads nothing again."""
    binary = tmp_path / "tool"
    binary.write_bytes(b"\x7fELF not really")
    layer_for = cluster.images.layer_for
    first, second = layer_for(binary, "tool"), layer_for(binary, "tool")
    assert first == second
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        member = tar.getmember("tool")
        assert member.mode == 0o755
        assert member.uid == 0
        assert member.mtime == 0
