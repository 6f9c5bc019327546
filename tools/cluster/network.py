"""The host network the cluster uses, and taking it out again: the node bridge and its
address, the service route, forwarding and our FORWARD rules at `up`; at `down`, the
links and the iptables rules of kube-proxy, the kubelet, the CNI plugins and ours."""

from __future__ import annotations

import ipaddress
import json
import shlex
import shutil
from functools import partial
from pathlib import Path
from typing import Any

from .commands import ClusterError, run
from .host_record import host_state, iptables_save, sysctl_path, write_sysctl
from .layout import NODE_BRIDGE, NODE_IP, POD_BRIDGE, POD_CIDR, RULE_COMMENT, SERVICE_CIDR


def check_addresses_free() -> None:
    """Our ranges must not overlap a route of the host's (ours excepted)."""
    routes = json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout)
    ours = {NODE_BRIDGE, POD_BRIDGE}
    for route in routes:
        dst = route.get("dst", "")
        if route.get("dev") in ours or dst in ("", "default") or route.get("type") == "broadcast":
            continue
        network = ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False)
        for cidr in (f"{NODE_IP}/32", POD_CIDR, SERVICE_CIDR):
            if network.overlaps(ipaddress.ip_network(cidr)) and not network.is_loopback:
                raise ClusterError(
                    f"{cidr} overlaps the host's route {dst} dev {route.get('dev')}: "
                    "change NODE_IP/POD_CIDR/SERVICE_CIDR in tools/cluster/layout.py"
                )


def setup_network() -> None:
    check_addresses_free()
    if not Path(f"/sys/class/net/{NODE_BRIDGE}").exists():
        run(["ip", "link", "add", NODE_BRIDGE, "type", "bridge"])
    addresses = run(["ip", "-o", "-4", "addr", "show", "dev", NODE_BRIDGE]).stdout
    if f" {NODE_IP}/" not in addresses:
        run(["ip", "addr", "add", f"{NODE_IP}/32", "dev", NODE_BRIDGE])
    run(["ip", "link", "set", NODE_BRIDGE, "up"])
    # Service addresses that kube-proxy does not (yet) translate stay on our bridge instead
    # of following the default route out of the machine.
    run(["ip", "route", "replace", SERVICE_CIDR, "dev", NODE_BRIDGE, "src", NODE_IP])
    if not sysctl_path("net.bridge.bridge-nf-call-iptables").exists():
        run(["modprobe", "br_netfilter"], check=False)
    write_sysctl("net.ipv4.ip_forward", "1")
    # dockerd sets the FORWARD policy to DROP: let pod traffic through our bridge.
    for direction in ("-i", "-o"):
        rule = ["FORWARD", direction, POD_BRIDGE, "-m", "comment", "--comment", RULE_COMMENT,
                "-j", "ACCEPT"]  # fmt: skip
        if run(["iptables", "-C", *rule], check=False, quiet=True).returncode != 0:
            run(["iptables", "-I", *rule])


def is_cluster_rule(line: str) -> bool:
    """An iptables-save line of kube-proxy, the kubelet, the CNI plugins or ours."""
    if line.startswith((":KUBE-", ":CNI-", "-A KUBE-", "-A CNI-")):
        return True
    if line.startswith("-A ") and any(
        f" {j} {c}-" in line for j in ("-j", "-g") for c in ("KUBE", "CNI")
    ):
        return True
    return line.startswith("-A ") and f"--comment {RULE_COMMENT}" in line


def split_tables(save: str) -> dict[str, list[str]]:
    tables: dict[str, list[str]] = {}
    current = ""
    for line in save.splitlines():
        if line.startswith("*"):
            current = line[1:]
            tables[current] = [line]
        elif current and not line.startswith("#"):
            tables[current].append(line)
    return tables


def cleanup_iptables(family: int, before: str | None, steps: host_state.Steps) -> None:
    """Remove kube-proxy's, the kubelet's, the CNI plugins' and our rules, one by one (a
    table is never rewritten: rules others add meanwhile, e.g. dockerd's, stay). A table
    that only appeared because of them (empty now) is deleted. Each command is a step."""
    tool = "iptables" if family == 4 else "ip6tables"
    if shutil.which(tool) is None:
        return
    for table, lines in split_tables(iptables_save(family)).items():
        chains = [
            line[1:].split()[0] for line in lines if line.startswith(":") and is_cluster_rule(line)
        ]
        commands = [
            [tool, "-w", "-t", table, "-D", *shlex.split(line)[1:]]
            for line in lines
            if line.startswith("-A ") and is_cluster_rule(line) and line.split()[1] not in chains
        ]
        for flag in ("-F", "-X"):  # every chain empty first: they jump to each other
            commands += [[tool, "-w", "-t", table, flag, chain] for chain in chains]
        for argv in commands:
            steps.run(shlex.join(argv), partial(run, argv))
    if before is None:
        return
    nft_family = "ip" if family == 4 else "ip6"
    tables_before = split_tables(before)
    for table, lines in split_tables(iptables_save(family)).items():
        empty = all(
            line.startswith(("*", "COMMIT")) or (line.startswith(":") and " ACCEPT " in line)
            for line in lines
        )
        if table not in tables_before and empty:
            steps.run(
                f"nft delete table {nft_family} {table}",
                partial(delete_nft_table, nft_family, table),
            )


def delete_nft_table(family: str, table: str) -> None:
    nft = host_state.require(
        "nft",
        f'the empty nf_tables table "{family} {table}" that the cluster created',
        f"nft delete table {family} {table}",
    )
    run([nft, "delete", "table", family, table])


def delete_link(name: str) -> None:
    """A link that went away meanwhile (a veth, with its pod's namespace) is no failure."""
    result = run(["ip", "link", "delete", name], check=False, quiet=True)
    if result.returncode != 0 and Path(f"/sys/class/net/{name}").exists():
        raise ClusterError(f"failed ({result.returncode}): ip link delete {name}: {result.stderr}")


def remove_links(state: dict[str, Any], steps: host_state.Steps) -> None:
    """Veths still on the pod bridge, the pod bridge, the node bridge."""
    links_before = set(state.get("links", []))
    if Path(f"/sys/class/net/{POD_BRIDGE}").exists():
        for port in Path(f"/sys/class/net/{POD_BRIDGE}/brif").iterdir():
            if port.name not in links_before:
                steps.run(f"ip link delete {port.name}", partial(delete_link, port.name))
    for link in (POD_BRIDGE, NODE_BRIDGE):
        if Path(f"/sys/class/net/{link}").exists() and link not in links_before:
            steps.run(f"ip link delete {link}", partial(delete_link, link))
