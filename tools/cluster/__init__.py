"""The local single-node Kubernetes cluster with Dapr (`make cluster-up/down`), run as
`python3 tools/cluster up|down|status|env`: what it does, in cli.py's docstring.

Standard library only: `down` runs under the system python3, with no uv sync and no build.

    cli.py           the verbs up, down, status, env, and their arguments
    layout.py        where everything lives (cache directories, fixed host paths), names, addresses
    commands.py      running a host command, progress lines, ClusterError
    daemons.py       the daemons as processes: pidfiles, start, stop, wait
    binaries.py      the binaries the cluster runs (scripts/ensure-cluster-tools.sh)
    host_record.py   the host as `up` found it (host-state.json), and the sysctls
    network.py       the bridges, routes and iptables rules: set up and taken out
    teardown.py      what `down` removes besides the network: pods, shims, mounts, files
    pki.py           certificates and service-account keys
    kubeconfigs.py   kubeconfigs and kubectl
    images.py        the local registry's images: pushed from binaries, copied from Docker
    node_config.py   containerd's, the kubelet's and kube-proxy's configuration files
    addons.py        CoreDNS, the registry announcement and storage, applied by `up`
    health.py        whether it is up and healthy
"""
