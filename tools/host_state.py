#!/usr/bin/env python3
"""Record what the project's dockerd changes on the host, and put it back afterwards.

Also the step runner that this restore and tools/cluster's `down` share.

    python3 tools/host_state.py docker-record DIR    # scripts/docker-up.sh, before dockerd
    python3 tools/host_state.py docker-restore DIR   # scripts/docker-down.sh, after it

The record (one file each, so a record made by an older version still restores):
iptables.before and ip6tables.before (iptables-save output), ip_forward.before
(net.ipv4.ip_forward), docker0.existed and key-json.existed (yes/no), and recorded (the
time, written last: a record without it is incomplete and is made again).

The restore removes only Docker's own additions: iptables rules that were not there before
and name a DOCKER* chain, docker0 or a compose bridge (br-<12 hex>); DOCKER* chains that did
not exist; built-in chain policies that changed (dockerd sets FORWARD to DROP); tables that
did not exist and are empty again (nf_tables backend, with nft). Rules anything else added
meanwhile stay. Then docker0 and /etc/docker/key.json if dockerd created them, and
net.ipv4.ip_forward, unless other bridges use forwarding. Every step runs whatever happened
to the ones before; a step whose command is missing is skipped with a line that says what
stays on the host and how to remove it by hand. The record is removed only when every step
succeeded, so that running the restore again retries the rest. Exit status 1 if a step
failed. Stdlib only: runs under the system python3.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

# Looked up after PATH: a reduced PATH, or one from sudo or cron, often lacks them.
SBIN_DIRS: tuple[str, ...] = ("/usr/sbin", "/sbin")

# Every command the Docker and cluster teardowns and setups run from a Debian package, and
# that package: scripts/docker-up.sh or scripts/ensure-cluster-tools.sh installs each one
# (tests/test_host_commands.py checks), and a skipped step names it.
HOST_COMMANDS = {
    "iptables": "iptables",
    "iptables-save": "iptables",
    "ip6tables": "iptables",
    "ip6tables-save": "iptables",
    "nft": "nftables",
    "ip": "iproute2",
    "modprobe": "kmod",
    "openssl": "openssl",
    "dockerd": "docker.io",
    "docker": "docker.io",
    "debootstrap": "debootstrap",
}

DOCKER_RULE = re.compile(r"DOCKER|\bdocker0\b|\bbr-[0-9a-f]{12}\b")
DOCKER_BRIDGE = re.compile(r"docker0|br-[0-9a-f]{12}")
BUILTIN_POLICY = "ACCEPT"


@dataclass(frozen=True)
class Host:
    """Where this machine keeps what the record reads and the restore changes."""

    proc_sys: Path = Path("/proc/sys")
    sys_class_net: Path = Path("/sys/class/net")
    docker_key: Path = Path("/etc/docker/key.json")  # dockerd 20.10 writes it; no flag moves it
    sbin_dirs: tuple[str, ...] = SBIN_DIRS


# --- commands and steps ----------------------------------------------------------------


class Skipped(Exception):
    """A step's command is missing; the message says what stays and how to remove it."""


class StepFailed(Exception):
    pass


def which(name: str, extra_dirs: Sequence[str] | None = None) -> str | None:
    """The command `name` from PATH, else from the sbin directories; None if neither has it."""
    dirs = [d for d in os.environ.get("PATH", os.defpath).split(os.pathsep) if d]
    dirs += [d for d in (SBIN_DIRS if extra_dirs is None else extra_dirs) if d not in dirs]
    return shutil.which(name, path=os.pathsep.join(dirs))


def require(name: str, left: str, by_hand: str, extra_dirs: Sequence[str] | None = None) -> str:
    """The command for a teardown step, or Skipped: `left` stays, `by_hand` removes it."""
    found = which(name, extra_dirs)
    if found is None:
        raise Skipped(
            f"left: {left}; remove it with: {by_hand}  "
            f"(Debian: apt-get install {HOST_COMMANDS[name]})"
        )
    return found


def need(name: str, extra_dirs: Sequence[str] | None = None) -> str:
    """A command that must be there (recording: nothing has changed yet, so stop)."""
    found = which(name, extra_dirs)
    if found is None:
        raise StepFailed(f"MISSING: {name} (Debian: apt-get install {HOST_COMMANDS[name]})")
    return found


def call(argv: Sequence[str]) -> str:
    """Run a command; its stdout, or StepFailed with the exit status and its last error line
    (a step's name says which command it runs)."""
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        error = result.stderr.strip().splitlines()[-1:]
        failed = f"exit {result.returncode} from {os.path.basename(argv[0])}"
        raise StepFailed(failed + (f": {error[0]}" if error else ""))
    return result.stdout


@dataclass
class Steps:
    """Runs teardown steps so that each one runs whatever happened to the ones before, and
    says at the end what failed and what was left."""

    prefix: str
    failures: list[str] = field(default_factory=list)
    skips: list[str] = field(default_factory=list)

    def log(self, message: str) -> None:
        print(f"{self.prefix}: {message}", file=sys.stderr, flush=True)

    def run(self, what: str, action: Callable[[], object]) -> bool:
        """Run one step; True if it succeeded. Exceptions are reported, never raised."""
        try:
            action()
        except Skipped as skipped:
            self.skips.append(str(skipped))
            self.log(str(skipped))
            return False
        except Exception as error:  # a teardown goes on whatever broke in one step
            message = (
                str(error) if isinstance(error, StepFailed) else f"{type(error).__name__}: {error}"
            )
            self.failures.append(f"{what}: {message}")
            self.log(f"FAILED {what}: {message}")
            return False
        return True

    @property
    def all_succeeded(self) -> bool:
        return not self.failures and not self.skips

    def summary(self) -> int:
        """Every failure and skip again, together; 1 if a step failed (skips only warn)."""
        if self.all_succeeded:
            return 0
        failed = f"{len(self.failures)} step(s) FAILED" if self.failures else "no step failed"
        self.log(f"summary: {failed}, {len(self.skips)} skipped:")
        for failure in self.failures:
            self.log(f"  FAILED {failure}")
        for skip in self.skips:
            self.log(f"  {skip}")
        return 1 if self.failures else 0


# --- iptables --------------------------------------------------------------------------


@dataclass
class Table:
    chains: dict[str, str] = field(default_factory=dict)  # name -> policy ("-" if user chain)
    rules: list[str] = field(default_factory=list)  # "-A CHAIN ..." lines


def parse(dump: str) -> dict[str, Table]:
    """iptables-save output, by table."""
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


def undo_arguments(name: str, table: Table, was: Table) -> list[list[str]]:
    """The iptables arguments that take Docker's additions out of one table, in order."""
    undo: list[list[str]] = []
    new_chains = [c for c in table.chains if c not in was.chains and c.startswith("DOCKER")]
    for rule in (Counter(table.rules) - Counter(was.rules)).elements():
        argv = shlex.split(rule)
        if argv[1] not in new_chains and DOCKER_RULE.search(rule):  # else flushed, or not Docker's
            undo.append(["-w", "-t", name, "-D", *argv[1:]])
    undo += [["-w", "-t", name, "-F", chain] for chain in new_chains]
    undo += [["-w", "-t", name, "-X", chain] for chain in new_chains]  # all empty first
    for chain, policy in table.chains.items():
        wanted = was.chains.get(chain, BUILTIN_POLICY)
        if policy != "-" and policy != wanted:
            undo.append(["-w", "-t", name, "-P", chain, wanted])
    return undo


def new_empty_tables(before: dict[str, Table], after: dict[str, Table]) -> list[str]:
    return [
        name
        for name, table in after.items()
        if name not in before
        and not table.rules
        and all(p == BUILTIN_POLICY for p in table.chains.values())
    ]


def run_logged(steps: Steps, argv: Sequence[str]) -> None:
    steps.log(shlex.join([os.path.basename(argv[0]), *argv[1:]]))
    call(argv)


def delete_nft_table(steps: Steps, family: str, name: str, extra_dirs: Sequence[str]) -> None:
    nft = require(
        "nft",
        f'the empty nf_tables table "{family} {name}" that dockerd created',
        f"nft delete table {family} {name}",
        extra_dirs,
    )
    run_logged(steps, [nft, "delete", "table", family, name])


def undo_iptables(steps: Steps, family: int, before_dump: Path, host: Host) -> None:
    """Take Docker's rules, chains and policies out, one command per step."""
    tool, save = ("iptables", "iptables-save") if family == 4 else ("ip6tables", "ip6tables-save")
    left = f"what dockerd added to {tool} (rules, chains, policies)"
    again = f"scripts/docker-down.sh once {tool} is installed"
    tool_path = require(tool, left, again, host.sbin_dirs)
    save_path = require(save, left, again, host.sbin_dirs)
    before = parse(before_dump.read_text())
    for name, table in parse(call([save_path])).items():
        for args in undo_arguments(name, table, before.get(name, Table())):
            steps.run(shlex.join([tool, *args]), partial(run_logged, steps, [tool_path, *args]))
    if "nf_tables" not in call([tool_path, "--version"]):
        return  # legacy iptables: its tables are the kernel's, nothing to delete
    nft_family = "ip" if family == 4 else "ip6"
    for name in new_empty_tables(before, parse(call([save_path]))):
        steps.run(
            f"nft delete table {nft_family} {name}",
            partial(delete_nft_table, steps, nft_family, name, host.sbin_dirs),
        )


# --- docker0, key.json, ip_forward -----------------------------------------------------


def flag(path: Path) -> str | None:
    """yes/no from the record; None when an older record lacks the file."""
    return path.read_text().strip() if path.exists() else None


def remove_docker0(steps: Steps, record: Path, host: Host) -> None:
    if (record / "docker0.existed").read_text().strip() != "no":
        return
    if not (host.sys_class_net / "docker0").exists():
        return
    ip = require(
        "ip", "the docker0 link that dockerd created", "ip link delete docker0", host.sbin_dirs
    )
    steps.log("removing docker0")
    call([ip, "link", "delete", "docker0"])


def remove_key_json(steps: Steps, record: Path, host: Host) -> None:
    if flag(record / "key-json.existed") == "no" and host.docker_key.is_file():
        steps.log(f"removing {host.docker_key} (dockerd wrote it)")
        host.docker_key.unlink()


def other_bridges(host: Host) -> list[str]:
    """Bridges that are not Docker's (a local Kubernetes node, libvirt, ...)."""
    return sorted(
        link.name
        for link in host.sys_class_net.iterdir()
        if (link / "bridge").is_dir() and not DOCKER_BRIDGE.fullmatch(link.name)
    )


def restore_ip_forward(steps: Steps, record: Path, host: Host) -> None:
    wanted = (record / "ip_forward.before").read_text().strip()
    setting = host.proc_sys / "net/ipv4/ip_forward"
    now = setting.read_text().strip()
    if now == wanted:
        return
    others = other_bridges(host)
    if others:
        # Turning it off would break their network: leave it on, and say so.
        steps.log(
            f"leaving net.ipv4.ip_forward={now} (was {wanted}): "
            f"other bridges use it: {' '.join(others)}"
        )
        return
    steps.log(f"net.ipv4.ip_forward back to {wanted}")
    setting.write_text(wanted + "\n")


# --- record and restore ----------------------------------------------------------------


def docker_record(record: Path, host: Host) -> None:
    """Write down what dockerd will change, unless an earlier start's record is still there:
    that dockerd was never torn down, so its record holds the state to come back to."""
    if (record / "recorded").exists():
        print(f"docker-record: keeping the host state recorded earlier ({record})", file=sys.stderr)
        return
    record.mkdir(parents=True, exist_ok=True)
    (record / "iptables.before").write_text(call([need("iptables-save", host.sbin_dirs)]))
    (record / "ip6tables.before").write_text(call([need("ip6tables-save", host.sbin_dirs)]))
    forward = (host.proc_sys / "net/ipv4/ip_forward").read_text().strip()
    (record / "ip_forward.before").write_text(forward + "\n")
    for name, path in (("docker0", host.sys_class_net / "docker0"), ("key-json", host.docker_key)):
        (record / f"{name}.existed").write_text("yes\n" if path.exists() else "no\n")
    (record / "recorded").write_text(datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + "\n")


def docker_restore(record: Path, host: Host) -> int:
    """Put back what the record says; 1 if a step failed. The record stays unless all ran."""
    steps = Steps("docker-restore")
    if not (record / "recorded").exists():
        steps.log(f"nothing to restore (no complete record in {record})")
        return 0
    steps.log(f"restoring the host state recorded at {(record / 'recorded').read_text().strip()}")
    for family, dump in ((4, "iptables.before"), (6, "ip6tables.before")):
        steps.run(
            f"undo IPv{family} iptables", partial(undo_iptables, steps, family, record / dump, host)
        )
    steps.run("ip link delete docker0", partial(remove_docker0, steps, record, host))
    steps.run("remove key.json", partial(remove_key_json, steps, record, host))
    steps.run("restore net.ipv4.ip_forward", partial(restore_ip_forward, steps, record, host))
    if steps.all_succeeded:
        steps.run("remove the record", partial(shutil.rmtree, record))
    status = steps.summary()
    if steps.all_succeeded:
        steps.log("host state restored")
    else:
        steps.log(f"the record stays in {record}: run scripts/docker-down.sh again to retry")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=["docker-record", "docker-restore"])
    parser.add_argument("record", type=Path, help="the record's directory")
    # Tests point these into a temporary directory.
    parser.add_argument("--proc-sys", type=Path, default=Host.proc_sys)
    parser.add_argument("--sys-class-net", type=Path, default=Host.sys_class_net)
    parser.add_argument("--docker-key", type=Path, default=Host.docker_key)
    parser.add_argument(
        "--sbin-dirs", default=":".join(SBIN_DIRS), help="searched after PATH, ':'-separated"
    )
    args = parser.parse_args(argv)
    sbin_dirs = tuple(d for d in args.sbin_dirs.split(":") if d)
    host = Host(args.proc_sys, args.sys_class_net, args.docker_key, sbin_dirs)
    if args.command == "docker-restore":
        return docker_restore(args.record, host)
    try:
        docker_record(args.record, host)
    except (StepFailed, OSError) as error:
        print(f"docker-record: cannot record the host state: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
