"""The node's configuration files: containerd's (with the CNI network and the registry
mirror), the kubelet's and kube-proxy's."""

from __future__ import annotations

from pathlib import Path

from .layout import (
    CNI_NETWORK,
    DNS_SERVICE_IP,
    NODE_IP,
    PKI,
    POD_BRIDGE,
    POD_CIDR,
    POD_GATEWAY,
    REGISTRY_HOST,
    REGISTRY_LISTEN,
    RUN,
    containerd_socket,
    write_json,
)


def write_containerd_config(pause_ref: str) -> Path:
    certs = RUN / "containerd/certs.d"
    # Plain HTTP to the local registry, for pull and resolve only. Docker Hub names
    # (redis:7.0.15-alpine in k8s/) resolve there too, and only there: no pull leaves the
    # machine. Put such an image in with `docker tag redis:7.0.15-alpine
    # localhost:5000/library/redis:7.0.15-alpine && docker push ...`.
    for host in (REGISTRY_HOST, "docker.io"):
        hosts = certs / host / "hosts.toml"
        hosts.parent.mkdir(parents=True, exist_ok=True)
        hosts.write_text(
            f'server = "http://{REGISTRY_LISTEN}"\n\n'
            f'[host."http://{REGISTRY_LISTEN}"]\n  capabilities = ["pull", "resolve"]\n'
        )
    config = f"""version = 2
root = "{RUN}/containerd/root"
state = "{RUN}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{containerd_socket()}"
[ttrpc]
  address = "{containerd_socket()}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{RUN}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_ref}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "10010"
  enable_cdi = false
  # This VM withholds CAP_SYS_RESOURCE: without this, every sandbox fails to start
  # (runc cannot set oom_score_adj -998).
  restrict_oom_score_adj = true
  # Pods' network namespaces under our state directory, not /run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{RUN}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{RUN}/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{certs}"
"""
    path = RUN / "containerd/config.toml"
    path.write_text(config)
    write_json(
        RUN / "cni/net.d/10-task-platform.conflist",
        {
            "cniVersion": "1.0.0",
            "name": CNI_NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": POD_BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(RUN / "cni/ipam"),
                        "ranges": [[{"subnet": POD_CIDR, "gateway": POD_GATEWAY}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
    )
    return path


def write_kubelet_config() -> Path:
    return write_json(
        RUN / "kubelet.json",
        {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": NODE_IP,
            "port": 10250,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "readOnlyPort": 0,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(PKI / "ca.crt")},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "cgroupDriver": "cgroupfs",
            "containerRuntimeEndpoint": f"unix://{containerd_socket()}",
            "clusterDomain": "cluster.local",
            "clusterDNS": [DNS_SERVICE_IP],
            "resolvConf": "",  # pods never get the host's resolvers: no DNS leaves the node
            "failSwapOn": False,
            "protectKernelDefaults": False,
            "makeIPTablesUtilChains": False,
            "enforceNodeAllocatable": [],
            "cgroupsPerQOS": True,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "podLogsDir": str(RUN / "pod-logs"),
            "serializeImagePulls": False,
            "maxPods": 60,
        },
    )


def write_proxy_config() -> Path:
    return write_json(
        RUN / "proxy.json",
        {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(RUN / "proxy.kubeconfig")},
            "clusterCIDR": POD_CIDR,
            "nodePortAddresses": [f"{NODE_IP}/32"],
            "bindAddress": NODE_IP,
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            "iptables": {"localhostNodePorts": False},
            # Leave the host's conntrack settings alone.
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
        },
    )
