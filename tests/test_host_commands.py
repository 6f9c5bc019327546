"""Nothing assumed present: every command the Docker engine's and the local cluster's setup
and teardown run is either on every Debian system, installed by the scripts that set them
up (with its Debian package), or looked up before use.

A brand-new Debian machine had Debian's iptables but not nft (package nftables), and the
Docker teardown died half-way. tools/host_state.py's HOST_COMMANDS names the Debian package
of each command the scripts run; scripts/docker-up.sh and scripts/ensure-cluster-tools.sh
must install that package. The scan is simple (command words of the scripts, argument
vectors of the Python tools), not a shell parser: it errs towards reporting too much.
"""

import ast
import re
from pathlib import Path
from types import ModuleType

import pytest

from harness.resources import REPO_ROOT
from harness.tools import tool_module

SCRIPTS = (
    "scripts/docker-up.sh",
    "scripts/docker-down.sh",
    "scripts/e2e-compose.sh",
    "scripts/e2e-k8s.sh",
    "scripts/standin-images.sh",
    "scripts/cluster-up.sh",
    "scripts/cluster-down.sh",
)
PYTHON_TOOLS = ("tools/host_state.py", "tools/cluster")


def words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Bash builtins and keywords, and commands from Debian's Essential and Priority: required
# packages (coreutils, grep, sed, tar, gzip, findutils, util-linux, mount, mawk, apt),
# which every Debian system has.
BASE_SYSTEM = words(
    "break cd command continue declare eval exec exit export false local printf pwd read "
    "return set shift source trap true type unset wait echo kill test "
    "basename cat chmod cp cut date dirname du env head id ln mkdir mktemp mv nice rm seq "
    "sha256sum sleep sort tail tee timeout touch tr wc grep sed tar gzip find xargs setsid "
    "flock mount umount awk apt-get"
)
# What the project requires before anything runs (docs/operate.md: "must be there").
PRECONDITIONS = {"python3": "Python 3.11+", "git": "the repository is a git clone"}
# Commands a script runs without installing or looking them up: each is a defect to fix in
# that script, reported as an expected failure (and a failure once fixed, so the entry goes).
KEYWORDS = words("if then else elif fi do done while until ! { } time")
NO_COMMAND = words("for case select in esac [[ [ ;;")
WRAPPERS = frozenset({"exec", "timeout", "setsid", "nice", "env", "time", "command"})
RUNNERS = frozenset({"run", "call", "Popen", "check_call", "check_output", "run_logged"})
LOOKUPS = frozenset({"which", "require", "need"})
FUNCTION = re.compile(r"^\s*([\w-]+)\s*\(\)\s*\{", re.MULTILINE)
SOURCED = re.compile(r"^\s*source\s+\"?(?:\$repo_root/)?(scripts/[\w-]+\.sh)", re.MULTILINE)
HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")
SEPARATORS = re.compile(r"\|\||&&|;|\n|(?<![<>])\|(?!\|)|(?<![<>0-9&])&(?![>&])|(?<!\S)[{}](?!\S)")


@pytest.fixture(scope="module")
def host_state() -> ModuleType:
    return tool_module("host_state.py", "host_state_commands")


# --- what the shell scripts run ---------------------------------------------------------


def skip_balanced(source: str, i: int, opening: str, closing: str) -> int:
    """The index after the `closing` that matches the `opening` at i."""
    depth = 0
    while i < len(source):
        depth += {opening: 1, closing: -1}.get(source[i], 0)
        i += 1
        if depth == 0:
            break
    return i


def shell_code(source: str) -> list[str]:
    """The code of a bash script, as text pieces: comments, quoted text, here-documents,
    ${...}, arithmetic and array values blanked out (a quoted word becomes $Q), and each
    $( ... ), also inside double quotes, a piece of its own ($S where it stood)."""
    pieces: list[list[str]] = [[]]  # the top level, then each open $( ... )
    done: list[str] = []
    contexts: list[str] = []  # '"' inside double quotes, "$(" inside a substitution
    heredocs: list[str] = []
    i = 0
    while i < len(source):
        c, out, quoted = source[i], pieces[-1], bool(contexts) and contexts[-1] == '"'
        if c == "\\":
            i += 2
        elif source.startswith("$(", i) and not source.startswith("$((", i):
            contexts.append("$(")
            pieces.append([])
            out.append("$S")
            i += 2
        elif source.startswith("${", i):
            i = skip_balanced(source, i + 1, "{", "}")
            out.append("$P")
        elif quoted:
            if c == '"':
                contexts.pop()
            i += 1
        elif c == "#" and (i == 0 or source[i - 1] in " \t\n;"):
            i = source.find("\n", i) if "\n" in source[i:] else len(source)
        elif c == "'":
            i = source.index("'", i + 1) + 1
            out.append("$Q")
        elif c == '"':
            contexts.append('"')
            out.append("$Q")
            i += 1
        elif source.startswith(("$((", "(("), i):
            i = skip_balanced(source, i + (c == "$"), "(", ")")
            out.append("$A")
        elif c == "(" and "".join(out).endswith("="):
            i = skip_balanced(source, i, "(", ")")  # an array's values
        elif c == ")" and contexts and contexts[-1] == "$(":
            contexts.pop()
            done.append("".join(pieces.pop()))
            i += 1
        elif c == "(":  # a subshell, or a function's ()
            contexts.append(c)
            out.append("\n")
            i += 1
        elif c == ")" and contexts:
            contexts.pop()
            out.append("\n")
            i += 1
        elif c == ")":
            text = "".join(out)  # a case pattern: the words before it are no command
            out[:] = [text[: max(text.rfind("\n"), text.rfind(";")) + 1], "\n"]
            i += 1
        elif source.startswith("<<<", i):
            out.append(" <<< ")
            i += 3
        elif match := HEREDOC.match(source, i):
            heredocs.append(match.group(2))
            i = match.end()
        elif c == "\n" and heredocs:
            lines = source[i + 1 :].split("\n")
            skipped = next(n for n, line in enumerate(lines) if line.strip() == heredocs[-1])
            i += 1 + sum(len(line) + 1 for line in lines[: skipped + 1])
            heredocs.pop()
            out.append("\n")
        else:
            out.append(c)
            i += 1
    return ["".join(p) for p in pieces] + done


def command_words(piece: str) -> list[str]:
    """The first word of each simple command (and of the command a wrapper runs)."""
    words = []
    for command in SEPARATORS.split(piece):
        tokens = command.split()
        while tokens and (
            tokens[0] in KEYWORDS
            or re.match(r"[A-Za-z_]\w*\+?=", tokens[0])
            or re.match(r"\d*[<>]", tokens[0])
        ):
            tokens.pop(0)
        if not tokens or tokens[0] in NO_COMMAND:
            continue
        while tokens:
            word = tokens.pop(0)
            words.append(word)
            if word not in WRAPPERS or "-v" in tokens[:1]:  # `command -v X` looks X up
                break
            while tokens and (
                tokens[0].startswith("-") or tokens[0].isdigit() or re.match(r"\d*[<>]", tokens[0])
            ):
                tokens.pop(0)
    return words


def functions_of(path: Path) -> set[str]:
    """Functions the script defines, and those of the project scripts it sources."""
    source = path.read_text()
    names = set(FUNCTION.findall(source))
    for sourced in SOURCED.findall(source):
        names |= set(FUNCTION.findall((REPO_ROOT / sourced).read_text()))
    return names


def external_commands(path: Path) -> set[str]:
    """What the script runs by name: not a variable, function or project script."""
    local = functions_of(path)
    found = set()
    for piece in shell_code(path.read_text()):
        for word in command_words(piece):
            if word.startswith(("$", "-")) or word in local:
                continue
            if "/" in word and not word.startswith("/"):
                assert (REPO_ROOT / word).exists(), f"{path.name} runs {word}, which is not there"
                continue
            found.add(word)
    return found


def looked_up(source: str) -> set[str]:
    return set(re.findall(r"command -v \"?([\w.+-]+)", source))


def installed_packages() -> dict[str, set[str]]:
    """Debian packages that docker-up.sh and ensure-cluster-tools.sh install when missing."""
    docker_up = (REPO_ROOT / "scripts/docker-up.sh").read_text()
    cluster = (REPO_ROOT / "scripts/ensure-cluster-tools.sh").read_text()
    pairs = re.search(r"for pair in ([^;]*); do", docker_up)
    debs = re.search(r"ensure_debs\(\) \{.*?for pkg in ([^;]*); do", cluster, re.DOTALL)
    assert pairs is not None
    assert debs is not None
    return {
        "scripts/docker-up.sh": {p.split(":")[1] for p in pairs.group(1).split() if ":" in p},
        "scripts/ensure-cluster-tools.sh": {
            p.split(":")[0] for p in debs.group(1).split() if ":" in p
        },
    }


def test_the_shell_scan_finds_commands() -> None:
    script = """set -e # a comment: curl
x=$(dirname "$(readlink -f "$0")")   # nested
[[ -f $x ]] && cat "$x" | grep -q 'never "this"'
for pair in a:b c:d; do need+=("${pair#*:}"); done
case $1 in
  redis) timeout 20 setsid nft list ruleset ;;
  *) ((n > 1)) || printf '%s\\n' "$(tr a b <<<"$y")" ;;
esac
python3 - <<'EOF'
import os; ip link
EOF
(cd "$x" && exec "$UV" run)
"""
    words = {w for piece in shell_code(script) for w in command_words(piece)}
    assert words == {
        "set", "dirname", "readlink", "cat", "grep", "timeout", "setsid", "nft", "printf",
        "tr", "python3", "cd", "exec", "$Q", "$A",
    }  # fmt: skip


# --- what the Python tools run ---------------------------------------------------------


def callee(node: ast.Call) -> str:
    return node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")


def python_commands(source: str) -> tuple[set[str], set[str]]:
    """Commands run as literal argument vectors, and commands looked up (which, require)."""
    ran, found = set(), set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        first = node.args[0]
        if callee(node) in RUNNERS and isinstance(first, ast.List | ast.Tuple) and first.elts:
            name = first.elts[0]
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                ran.add(name.value)
        if callee(node) in LOOKUPS and isinstance(first, ast.Constant):
            found.add(str(first.value))
    return ran, found


def test_the_python_scan_finds_commands() -> None:
    source = 'run(["umount", p]); subprocess.run([tool, "-L"]); require("nft", "x", "y")'
    assert python_commands(source) == ({"umount"}, {"nft"})


# --- the checks ------------------------------------------------------------------------


def test_the_setup_scripts_install_every_host_command(host_state: ModuleType) -> None:
    installed = installed_packages()
    everywhere = set().union(*installed.values())
    missing = {c: p for c, p in host_state.HOST_COMMANDS.items() if p not in everywhere}
    assert missing == {}, "not installed by docker-up.sh or ensure-cluster-tools.sh"
    for script, packages in installed.items():
        assert {"iptables", "nftables", "iproute2"} <= packages, script  # the teardowns' tools


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_run_only_commands_that_are_installed_or_looked_up(
    script: str, host_state: ModuleType
) -> None:
    path = REPO_ROOT / script
    assumed = {
        word
        for word in external_commands(path)
        if Path(word).name not in host_state.HOST_COMMANDS
        and word not in BASE_SYSTEM | PRECONDITIONS.keys() | looked_up(path.read_text())
    }
    assert assumed == set(), f"{script} runs these without installing or looking them up"


@pytest.mark.parametrize("tool", PYTHON_TOOLS)
def test_python_tools_run_only_commands_that_are_installed_or_looked_up(
    tool: str, host_state: ModuleType
) -> None:
    path = REPO_ROOT / tool
    ran: set[str] = set()
    found: set[str] = set()
    for source in sorted(path.glob("*.py")) if path.is_dir() else [path]:  # a package: every module
        ran_here, found_here = python_commands(source.read_text())
        ran |= ran_here
        found |= found_here
    assert ran | found, "the scan found no command at all"
    assert ran - BASE_SYSTEM - host_state.HOST_COMMANDS.keys() == set()
    # A skipped step names the package of the command it missed.
    assert found - host_state.HOST_COMMANDS.keys() == set()
