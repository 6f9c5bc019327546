"""A real single-node Kubernetes cluster with Dapr on this machine: `make cluster-up/down`.

    python3 tools/cluster up        # idempotent; prints the kubeconfig and context
    python3 tools/cluster down      # stops everything it started, restores the host
    python3 tools/cluster status
    python3 tools/cluster env       # shell assignments (KUBECONFIG=...) for eval

The node is this machine: its own containerd (CRI on), runc, the bridge CNI plugin, etcd on
loopback, the control plane and a kubelet as plain processes, kube-proxy in iptables mode,
CoreDNS as a Deployment, a local image registry announced to Tilt (KEP-1755), and Dapr's
control plane installed from the chart in the pinned dapr module. Every binary comes from
scripts/ensure-cluster-tools.sh (built once into the cache) or Debian packages.

Cluster addresses live only on the two bridges this script creates (the node address on
NODE_BRIDGE, pods behind POD_BRIDGE); traffic goes nowhere but loopback and those. Before
changing the host, `up` records every setting it will touch (sysctls, iptables rules, links,
directories outside its own) in host-state.json; `down` puts them back and removes the rest,
each step whatever happened to the ones before (tools/host_state.py runs them), and lists what
failed (exit status 1) or was left (a missing command: what, and how to remove it by hand).
Needs root (Linux only).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from functools import partial

from .addons import bootstrap_objects, make_volume_dirs
from .binaries import Tools, ensure_tools, versions
from .commands import ClusterError, log, run
from .daemons import DAEMONS, owned_pid, start_daemon, stop_daemon, wait_for
from .health import api_get, healthy, http_ok, node_ready
from .host_record import (
    host_state,
    load_host_state,
    record_host_state,
    report_host_differences,
    restore_sysctl,
)
from .images import cluster_images, preload_images, push_image
from .kubeconfigs import kubeconfig, kubectl
from .layout import (
    API_PORT,
    API_URL,
    BASE,
    CONTEXT,
    ETCD_CLIENT,
    ETCD_PEER,
    HOST_STATE,
    KUBECONFIG,
    LOGS,
    NODE_IP,
    NODE_NAME,
    PKI,
    REGISTRY_DATA,
    REGISTRY_HOST,
    REGISTRY_LISTEN,
    RUN,
    SERVICE_CIDR,
    containerd_socket,
    write_json,
)
from .network import cleanup_iptables, remove_links, setup_network
from .node_config import write_containerd_config, write_kubelet_config, write_proxy_config
from .pki import ensure_pki
from .teardown import (
    kill_orphan_shims,
    kill_tasks,
    mounts_under,
    remove_cgroups,
    remove_fixed_paths,
    remove_mounts,
    remove_run_dir,
    stop_pods,
)


def up(tools: Tools) -> None:
    started = time.monotonic()
    pins = versions()
    if healthy():
        log("already up and healthy")
        preload_images()
        print_info()
        return
    if any(owned_pid(name) is not None for name in DAEMONS) or mounts_under(BASE):
        log("partly up: taking it down first")
        if down(Tools.saved()).failures:
            raise ClusterError("taking the partial cluster down failed (see above)")
    record_host_state()
    for stale in (RUN, LOGS):
        shutil.rmtree(stale, ignore_errors=True)  # nothing is mounted there (checked above)
    RUN.mkdir(parents=True)
    tools.save()
    ensure_pki()
    setup_network()

    # The registry first: containerd pulls every cluster image from it.
    REGISTRY_DATA.mkdir(parents=True, exist_ok=True)
    registry_config = write_json(
        RUN / "registry.json",
        {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {
                "filesystem": {"rootdirectory": str(REGISTRY_DATA)},
                "delete": {"enabled": True},
            },
            "http": {"addr": REGISTRY_LISTEN},
        },
    )
    registry_env = {"PATH": os.environ.get("PATH", ""), "OTEL_TRACES_EXPORTER": "none"}
    start_daemon("registry", [tools.registry, "serve", registry_config], env=registry_env)
    wait_for("the registry", lambda: http_ok(f"http://{REGISTRY_LISTEN}/v2/"), 30, "registry")
    images = cluster_images(tools)
    for image in images:
        push_image(image)
    preload_images()
    log(f"images pushed to {REGISTRY_HOST} ({time.monotonic() - started:.0f} s)")

    start_daemon("etcd", [
        tools.etcd, "--name", NODE_NAME, "--data-dir", RUN / "etcd",
        "--listen-client-urls", f"http://{ETCD_CLIENT}", "--advertise-client-urls", f"http://{ETCD_CLIENT}",
        "--listen-peer-urls", f"http://{ETCD_PEER}", "--initial-advertise-peer-urls", f"http://{ETCD_PEER}",
        "--initial-cluster", f"{NODE_NAME}=http://{ETCD_PEER}",
    ])  # fmt: skip
    containerd_config = write_containerd_config(images[0].ref)
    start_daemon("containerd", [tools.containerd, "--config", containerd_config])
    wait_for("etcd", lambda: http_ok(f"http://{ETCD_CLIENT}/health"), 60, "etcd")
    start_daemon("kube-apiserver", [
        tools.k8s("kube-apiserver"),
        f"--etcd-servers=http://{ETCD_CLIENT}",
        f"--bind-address={NODE_IP}", f"--advertise-address={NODE_IP}", f"--secure-port={API_PORT}",
        f"--tls-cert-file={PKI}/apiserver.crt", f"--tls-private-key-file={PKI}/apiserver.key",
        f"--client-ca-file={PKI}/ca.crt",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={PKI}/sa.pub",
        f"--service-account-signing-key-file={PKI}/sa.key",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true",
        f"--kubelet-client-certificate={PKI}/apiserver-kubelet-client.crt",
        f"--kubelet-client-key={PKI}/apiserver-kubelet-client.key",
        "--kubelet-preferred-address-types=InternalIP",
        "--profiling=false",
    ])  # fmt: skip
    write_json(KUBECONFIG, kubeconfig("admin"), 0o600)
    for stem in ("controller-manager", "scheduler", "kubelet", "proxy"):
        write_json(RUN / f"{stem}.kubeconfig", kubeconfig(stem), 0o600)
    wait_for("the API server", lambda: api_get("/readyz")[0] == 200, 120, "kube-apiserver")
    wait_for("containerd", lambda: containerd_socket().exists(), 30, "containerd")
    log(f"API server ready ({time.monotonic() - started:.0f} s)")

    start_daemon("kube-controller-manager", [
        tools.k8s("kube-controller-manager"),
        f"--kubeconfig={RUN}/controller-manager.kubeconfig",
        f"--authentication-kubeconfig={RUN}/controller-manager.kubeconfig",
        f"--authorization-kubeconfig={RUN}/controller-manager.kubeconfig",
        "--bind-address=127.0.0.1", "--leader-elect=false",
        f"--service-account-private-key-file={PKI}/sa.key", f"--root-ca-file={PKI}/ca.crt",
        f"--cluster-signing-cert-file={PKI}/ca.crt", f"--cluster-signing-key-file={PKI}/ca.key",
        "--use-service-account-credentials=true",
        f"--service-cluster-ip-range={SERVICE_CIDR}", "--allocate-node-cidrs=false",
    ])  # fmt: skip
    start_daemon("kube-scheduler", [
        tools.k8s("kube-scheduler"),
        f"--kubeconfig={RUN}/scheduler.kubeconfig",
        f"--authentication-kubeconfig={RUN}/scheduler.kubeconfig",
        f"--authorization-kubeconfig={RUN}/scheduler.kubeconfig",
        "--bind-address=127.0.0.1", "--leader-elect=false",
    ])  # fmt: skip
    start_daemon("kubelet", [
        tools.k8s("kubelet"),
        f"--config={write_kubelet_config()}",
        f"--kubeconfig={RUN}/kubelet.kubeconfig",
        f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_IP}",
        f"--root-dir={RUN}/kubelet", f"--cert-dir={RUN}/kubelet/pki",
    ])  # fmt: skip
    start_daemon("kube-proxy", [
        tools.k8s("kube-proxy"), f"--config={write_proxy_config()}",
        f"--hostname-override={NODE_NAME}",
    ])  # fmt: skip

    coredns_ref = next(i.ref for i in images if i.repository == "task-platform/coredns")
    make_volume_dirs()
    kubectl(tools, "apply", "-f", "-", input_text=json.dumps(bootstrap_objects(coredns_ref)))
    wait_for("the node to be Ready", node_ready, 120, "kubelet")
    log(f"node Ready ({time.monotonic() - started:.0f} s)")
    kubectl(tools, "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=180s")
    log(f"CoreDNS ready ({time.monotonic() - started:.0f} s)")

    dapr = pins["DAPR_RUNTIME_VERSION"]
    helm_env = {
        **os.environ,
        **{f"HELM_{d}_HOME": str(RUN / "helm" / d.lower()) for d in ("CACHE", "CONFIG", "DATA")},
    }
    run([
        tools.helm, "upgrade", "--install", "dapr", tools.dapr_chart,
        "--kubeconfig", KUBECONFIG, "--kube-context", CONTEXT,
        "--namespace", "dapr-system", "--create-namespace",
        "--set", f"global.registry={REGISTRY_HOST}/dapr", "--set", f"global.tag={dapr}",
        "--set", "global.scheduler.enabled=false", "--set", "global.ha.enabled=false",
        "--wait", "--timeout", "5m",
    ], env=helm_env)  # fmt: skip
    log(f"Dapr {dapr} control plane ready ({time.monotonic() - started:.0f} s)")
    log(f"up in {time.monotonic() - started:.0f} s")
    print_info()


def print_info() -> None:
    print(
        f"cluster: kubeconfig {KUBECONFIG}, context {CONTEXT}, API {API_URL}, "
        f"registry {REGISTRY_HOST}\n"
        f"  export KUBECONFIG={shlex.quote(str(KUBECONFIG))}   "
        f'# or: eval "$(python3 tools/cluster env)"',
        file=sys.stderr,
    )
    print(env_text(), end="")


def env_text() -> str:
    text = (
        f"KUBECONFIG={shlex.quote(str(KUBECONFIG))}\n"
        f"KUBE_CONTEXT={CONTEXT}\n"
        f"TASK_PLATFORM_REGISTRY={REGISTRY_HOST}\n"
    )
    tools = Tools.saved()
    if tools is not None:
        text += f"K8S_BIN={shlex.quote(str(tools.k8s_bin))}\nHELM={shlex.quote(str(tools.helm))}\n"
    return text + "export KUBECONFIG\n"


def down(tools: Tools | None = None) -> host_state.Steps:
    """Stop everything `up` started and put the host back. Each step runs whatever happened
    to the ones before; the result lists what failed and what was left. host-state.json
    stays unless every step succeeded, so that running `down` again retries."""
    steps = host_state.Steps("cluster")
    state = load_host_state()
    if tools is not None:
        steps.run("stop the pods", partial(stop_pods, tools))
    for name in ("kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"):
        steps.run(f"stop {name}", partial(stop_daemon, name))
    if tools is not None:
        steps.run("kill the containers", partial(kill_tasks, tools))
    for name in ("containerd", "kube-apiserver", "etcd", "registry"):
        steps.run(f"stop {name}", partial(stop_daemon, name))
    steps.run("kill leftover shims", kill_orphan_shims)
    steps.run("unmount", partial(remove_mounts, state, steps))
    steps.run("delete links", partial(remove_links, state, steps))
    for family, key in ((4, "iptables"), (6, "ip6tables")):
        steps.run(f"clean up {key}", partial(cleanup_iptables, family, state.get(key), steps))
    for name, value in state.get("sysctls", {}).items():
        steps.run(f"restore {name}", partial(restore_sysctl, name, value))
    steps.run("remove the kubelet's cgroups", partial(remove_cgroups, state))
    steps.run("remove files at fixed paths", partial(remove_fixed_paths, state))
    steps.run(f"remove {RUN}", remove_run_dir)
    steps.run("compare the host with before `up`", partial(report_host_differences, state))
    if steps.all_succeeded:
        HOST_STATE.unlink(missing_ok=True)
        log("down")
    else:
        log(f"{HOST_STATE} stays: `make cluster-down` again retries what was left")
    return steps


def status() -> int:
    for name in DAEMONS:
        pid = owned_pid(name)
        print(f"{name:24} {'running, pid ' + str(pid) if pid else 'not running'}")
    ok = healthy()
    print(f"healthy: {ok}  kubeconfig: {KUBECONFIG}  context: {CONTEXT}")
    return 0 if ok else 1


@contextlib.contextmanager
def lock() -> Iterator[None]:
    import fcntl

    BASE.mkdir(parents=True, exist_ok=True)
    with (BASE / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    args = parser.parse_args(argv)
    if args.command == "env":
        print(env_text(), end="")
        return 0
    if args.command == "status":
        return status()
    if os.geteuid() != 0:
        log("needs root (it runs containerd, a kubelet and changes iptables)")
        return 1
    with lock():
        try:
            if args.command == "up":
                up(ensure_tools())
            else:
                return down(Tools.saved()).summary()  # 1 if a step failed
        except ClusterError as error:
            log(f"FAILED: {error}")
            if args.command == "up":
                log(f"logs are in {LOGS}; `make cluster-down` cleans up")
            return 1
    return 0
