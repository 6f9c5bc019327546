"""The README is the front door and docs/ and bench/README.md hold the rest: every relative
link in them leads to a file that exists (and an `#anchor` to a heading of that file), and
every command in the README's bash blocks names a make target or a file that exists."""

import re
import shlex
from pathlib import Path

import pytest

from harness.resources import REPO_ROOT

README = REPO_ROOT / "README.md"
DOCUMENTS = [README, *sorted((REPO_ROOT / "docs").glob("*.md")), REPO_ROOT / "bench" / "README.md"]
README_MAX_LINES = 150

FENCE = re.compile(r"^(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+).*?\1", re.DOTALL)  # a code span may wrap
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto: ...


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in prose_lines(path.read_text()):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading.group(1))
            anchor, n = base, 0
            while anchor in found:  # GitHub numbers repeated headings: x, x-1, x-2
                n += 1
                anchor = f"{base}-{n}"
            found.add(anchor)
    return found


def links(path: Path) -> list[str]:
    """Every link's target, also of a link whose text wraps onto the next line."""
    prose = "\n".join(prose_lines(path.read_text()))
    return LINK.findall(INLINE_CODE.sub("", prose))


def test_the_documents_exist_and_the_readme_stays_a_front_door() -> None:
    for path in DOCUMENTS:
        assert path.is_file(), path
    assert len(DOCUMENTS) >= 6, DOCUMENTS
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move the detail to docs/"
    # Every page is reachable from the front door.
    linked = {(REPO_ROOT / t.split("#")[0]).resolve() for t in links(README)}
    assert {p.resolve() for p in DOCUMENTS[1:]} <= linked


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_every_relative_link_leads_somewhere(path: Path) -> None:
    broken = []
    for target in links(path):
        if EXTERNAL.match(target):
            continue
        file, _, anchor = target.partition("#")
        destination = (path.parent / file).resolve() if file else path
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix != ".md":
            broken.append(f"{target}: an anchor into a file that is not Markdown")
        elif anchor and anchor not in anchors(destination):
            broken.append(f"{target}: no such heading in {destination.name}")
    assert not broken, broken


def makefile_targets() -> set[str]:
    text = (REPO_ROOT / "Makefile").read_text()
    return {
        name
        for line in text.splitlines()
        if (rule := re.match(r"^([A-Za-z0-9_.-]+(?:\s+[A-Za-z0-9_.-]+)*)\s*:(?!=)", line))
        for name in rule.group(1).split()
        if not name.startswith(".")  # .PHONY and the like
    }


def bash_commands(text: str) -> list[str]:
    """The commands of the ```bash blocks, continuation lines joined."""
    commands, block, pending = [], False, ""
    for line in text.splitlines():
        if line.startswith("```"):
            block = line.strip() == "```bash"
            continue
        if not block:
            continue
        pending += line
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        if pending.strip() and not pending.lstrip().startswith("#"):
            commands.append(pending)
        pending = ""
    return commands


def simple_commands(command: str) -> list[list[str]]:
    """The words of each simple command in a line: split at |, ;, &&, || and parentheses."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|()")
    lexer.commenters = "#"
    lexer.wordchars += "$={}:/.,-?*"
    simple: list[list[str]] = [[]]
    for token in lexer:
        if set(token) <= set(";&|()"):  # NAME=$(...) is NAME=$, then the command in (...)
            simple.append([])
        else:
            simple[-1].append(token)
    return [words for words in simple if words]


# What a README command may run besides make targets and the repository's own files.
ALLOWED_PROGRAMS = {"curl", "python3"}


@pytest.mark.parametrize("command", bash_commands(README.read_text()))
def test_every_readme_command_names_what_exists(command: str) -> None:
    targets = makefile_targets()
    for words in simple_commands(command):
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            words = words[1:]  # an assignment: KEY=value
        if not words:
            continue
        program, *arguments = words
        if program == "make":
            named = [a for a in arguments if not a.startswith("-") and "=" not in a]
            assert named, command
            assert set(named) <= targets, (command, set(named) - targets)
        elif "/" in program:
            assert (REPO_ROOT / program).is_file(), (command, program)
        else:
            assert program in ALLOWED_PROGRAMS, (command, program)
        for argument in arguments:  # a path into the repository must exist
            top = argument.split("/")[0]
            if "/" in argument and top and (REPO_ROOT / top).is_dir():
                assert (REPO_ROOT / argument).exists(), (command, argument)
