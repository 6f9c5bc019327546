"""No test, benchmark or script runs a project tool by bare name.

uv, daprd, the dapr CLI, tilt, kustomize, kubectl, helm and docker are resolved by the
scripts that install or build them (bootstrap exports $UV, ensure-dapr.sh prints the
runtime directory, ...). A bare name finds whatever the developer's PATH holds (a pyenv
shim, ~/go/bin, Debian's old kubectl) and fails on a new machine, where CI runs.
"""

import ast
import re
from pathlib import Path

import pytest

from harness.resources import REPO_ROOT

TOOLS = frozenset({"uv", "dapr", "daprd", "tilt", "kustomize", "kubectl", "helm", "docker"})
PYTHON_DIRS = (
    "tests",
    "bench",
    "tools",
    "services/task-api/tests",
    "services/notification-service/tests",
)
# A command word: at the start of a line or after a shell operator, outside quotes.
SHELL_COMMAND = re.compile(
    r"(?:^|[;&|(]|\b(?:then|do|else|exec|time|nice)\s)\s*(" + "|".join(sorted(TOOLS)) + r")(?=\s|$)"
)


def python_files() -> list[Path]:
    return sorted(
        path
        for directory in PYTHON_DIRS
        if (REPO_ROOT / directory).is_dir()
        for path in (REPO_ROOT / directory).rglob("*.py")
        if ".venv" not in path.parts
    )


def shell_files() -> list[Path]:
    return [*sorted((REPO_ROOT / "scripts").rglob("*.sh")), REPO_ROOT / "Makefile"]


def bare_commands_in_python(source: str) -> list[int]:
    """Lines of list or tuple literals that start with a tool's bare name: the shape
    of a subprocess argument vector."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.List | ast.Tuple) and node.elts:
            first = node.elts[0]
            if isinstance(first, ast.Constant) and first.value in TOOLS:
                found.append(node.lineno)
    return found


def bare_commands_in_shell(source: str) -> list[int]:
    found = []
    for number, line in enumerate(source.splitlines(), start=1):
        code = re.sub(r"'[^']*'|\"(?:\\.|[^\"\\])*\"", '""', line.split(" #")[0])
        if code.lstrip().startswith("#"):
            continue
        if SHELL_COMMAND.search(code):
            found.append(number)
    return found


def test_the_detectors_find_bare_names() -> None:
    assert bare_commands_in_python('subprocess.run(["uv", "sync"])') == [1]
    assert bare_commands_in_python('subprocess.run([str(uv), "sync"])') == []
    assert bare_commands_in_shell("uv sync --frozen") == [1]
    assert bare_commands_in_shell("cd x && kubectl get pods") == [1]
    assert bare_commands_in_shell('"$UV" run pytest') == []
    assert bare_commands_in_shell('log "install it with: dapr init --slim"') == []


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_python_never_spawns_a_tool_by_bare_name(path: Path) -> None:
    assert bare_commands_in_python(path.read_text()) == [], path


@pytest.mark.parametrize("path", shell_files(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_scripts_never_run_a_tool_by_bare_name(path: Path) -> None:
    assert bare_commands_in_shell(path.read_text()) == [], path
