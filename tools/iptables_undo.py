#!/usr/bin/env python3
"""Undo what a dockerd did to iptables, given an `iptables-save` dump taken before it started.

Usage: tools/iptables_undo.py {4|6} BEFORE_DUMP

Only Docker's own additions are removed: rules that were not in BEFORE_DUMP and name a
DOCKER* chain, docker0 or a compose bridge (br-<12 hex>); chains named DOCKER* that did not
exist before; built-in chain policies that changed (dockerd sets FORWARD to DROP). Rules
that anything else added meanwhile (another cluster on this machine) are left alone. A
table that did not exist before and is empty again is deleted (nf_tables backend), so
`iptables-save` prints what it printed before. Stdlib only: runs under the system python3.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field

DOCKER_RULE = re.compile(r"DOCKER|\bdocker0\b|\bbr-[0-9a-f]{12}\b")
BUILTIN_POLICY = "ACCEPT"


def sh(*argv: str) -> str:
    """Run one of the fixed netfilter tools (arguments come from iptables-save), return stdout."""
    return subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False).stdout


@dataclass
class Table:
    chains: dict[str, str] = field(default_factory=dict)  # name -> policy ("-" if user chain)
    rules: list[str] = field(default_factory=list)  # "-A CHAIN ..." lines


def parse(dump: str) -> dict[str, Table]:
    tables: dict[str, Table] = {}
    current: Table | None = None
    for line in dump.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:].strip(), Table())
        elif current is None or not line or line.startswith("#") or line == "COMMIT":
            continue
        elif line.startswith(":"):
            name, policy = line[1:].split()[:2]
            current.chains[name] = policy
        elif line.startswith("-A "):
            current.rules.append(line)
    return tables


def main() -> int:
    family, before_path = sys.argv[1], sys.argv[2]
    tool = "/usr/sbin/iptables" if family == "4" else "/usr/sbin/ip6tables"
    nft_family = "ip" if family == "4" else "ip6"
    with open(before_path) as f:
        before = parse(f.read())
    now = parse(sh(f"{tool}-save"))

    def run(*args: str) -> None:
        print(f"iptables-undo: {os.path.basename(tool)} {' '.join(args)}", file=sys.stderr)
        sys.stderr.write(sh(tool, *args))

    for name, table in now.items():
        was = before.get(name, Table())
        extra = Counter(table.rules) - Counter(was.rules)
        new_chains = [c for c in table.chains if c not in was.chains and c.startswith("DOCKER")]
        for rule in extra.elements():
            argv = shlex.split(rule)
            if argv[1] in new_chains or not DOCKER_RULE.search(rule):
                continue  # flushed with its chain below, or not Docker's
            run("-t", name, "-D", *argv[1:])
        for chain in new_chains:
            run("-t", name, "-F", chain)
        for chain in new_chains:
            run("-t", name, "-X", chain)
        for chain, policy in table.chains.items():
            if policy != "-":
                wanted = was.chains.get(chain, BUILTIN_POLICY)
                if policy != wanted:
                    run("-t", name, "-P", chain, wanted)

    # Tables that Docker created and that are empty again: delete them (nf_tables only).
    version = sh(tool, "--version")
    if "nf_tables" in version:
        after = parse(sh(f"{tool}-save"))
        for name, table in after.items():
            empty = not table.rules and all(p == BUILTIN_POLICY for p in table.chains.values())
            if name not in before and empty:
                print(f"iptables-undo: nft delete table {nft_family} {name}", file=sys.stderr)
                sh("/usr/sbin/nft", "delete", "table", nft_family, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
